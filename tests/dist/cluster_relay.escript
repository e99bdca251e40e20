#!/usr/bin/env escript
%% The Erlang node of the three-node cluster test (cluster_test.cpp): a plain Erlang node whose
%% registered process `relay` obeys commands sent to it as messages, so that a C++ test can make
%% Erlang processes link, monitor and exit, and hear back what they saw. Every report goes to the
%% pid that sent the command, as {relay, Kind, ...}.
%%
%%   escript cluster_relay.escript Name Cookie
%%
%% Starts the node Name@<host> (short names; ERL_EPMD_PORT chooses the EPMD), prints "ready" once
%% `relay` is registered, and serves until killed. Commands (From: the pid to report to):
%%
%%   {From, ping}               -> {relay, pong, RelayPid}
%%   {From, forward, Dest, Msg} Dest ! Msg (Dest: a pid or {Name, Node}; connects if needed)
%%   {From, watch, Target}      a new process monitors Target (a pid, or {Name, Node} of a process
%%                              that answers {Pid, T} with {echo, T, _}, as cpp_echo does), and
%%                              for a {Name, Node} also the node; reports {relay, watching, Target}
%%                              once the monitor is in place (for {Name, Node}: after a connect and
%%                              an echo round trip behind the monitor, so the other node has it),
%%                              then {relay, down, Target, Reason} and {relay, nodedown, Node}
%%   {From, linker}             a new process that traps exits; reports {relay, linker, Pid}; it
%%                              obeys {link, P} (links, reports {relay, linked, P}) and
%%                              {exit, Reason} (exits with Reason), and reports every
%%                              {'EXIT', P, Reason} it receives as {relay, exit, self(), P, Reason}
-mode(compile).

main([Name, Cookie]) ->
    {ok, _} = net_kernel:start([list_to_atom(Name), shortnames]),
    erlang:set_cookie(node(), list_to_atom(Cookie)),
    register(relay, self()),
    io:format("ready~n"),
    serve();
main(_) ->
    io:format("usage: cluster_relay.escript Name Cookie~n"),
    halt(2).

serve() ->
    receive
        {From, ping} ->
            From ! {relay, pong, self()};
        {_From, forward, Dest, Msg} ->
            Dest ! Msg;
        {From, watch, Target} ->
            spawn(fun() -> watch(From, Target) end);
        {From, linker} ->
            spawn(fun() -> process_flag(trap_exit, true), From ! {relay, linker, self()}, linker(From) end);
        Other ->
            io:format("relay: unknown command ~p~n", [Other])
    end,
    serve().

watch(From, {_Name, Node} = Target) ->
    true = net_kernel:connect_node(Node),
    erlang:monitor(process, Target),
    monitor_node(Node, true),
    % Messages on one connection arrive in order: the echo comes back after the other node has
    % taken the monitor.
    Target ! {self(), watch_sync},
    receive {echo, watch_sync, _} -> ok after 10000 -> error(no_echo_from_target) end,
    From ! {relay, watching, Target},
    report(From, Target);
watch(From, Target) when is_pid(Target) ->
    % The monitor travels to Target's node on the connection the report then takes: it is there
    % before the report.
    erlang:monitor(process, Target),
    From ! {relay, watching, Target},
    report(From, Target).

report(From, Target) ->
    receive
        {'DOWN', _, process, _, Reason} -> From ! {relay, down, Target, Reason};
        {nodedown, Node} -> From ! {relay, nodedown, Node}
    end,
    report(From, Target).

linker(From) ->
    receive
        {link, P} ->
            link(P),
            From ! {relay, linked, P};
        {exit, Reason} ->
            exit(Reason);
        {'EXIT', P, Reason} ->
            From ! {relay, exit, self(), P, Reason}
    end,
    linker(From).
