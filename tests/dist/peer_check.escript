#!/usr/bin/env escript
%% The Erlang side of the distribution tests (erlang-distribution.md §7.2): a hidden Erlang node
%% that checks a target node behaves as an Erlang node should.
%%
%%   escript peer_check.escript TargetNode Cookie [Check ...]
%%
%% The target must run a registered process `cpp_echo` with the contract of §7.2 (athanor-node
%% does); the rpc checks (§8.4) also need the function math_cpp:add/2 and the gen_server
%% `counter` of athanor-node. Runs the named checks (all of them when none is named), prints one line per check,
%% "PASS name" or "FAIL name: why", and exits 0 only if every check passed. Short or long names
%% are chosen from the target's host, as erl requires both ends to agree.
-mode(compile).

checks() ->
    [ping, listed_hidden, reg_send_and_reply, gen_server_call, gen_server_call_noproc,
     term_roundtrip, big_message, link_exit_propagation, monitor_down_on_disconnect,
     erpc_call, rpc_call_errors, rpc_block_call, erpc_cast_and_spawn, counter_call].

main([Target, Cookie | Only]) ->
    Node = list_to_atom(Target),
    [_, Host] = string:split(Target, "@"),
    Mode = case lists:member($., Host) of true -> longnames; false -> shortnames end,
    Me = list_to_atom("peer_check_" ++ integer_to_list(erlang:unique_integer([positive])) ++
                      case Mode of longnames -> "@" ++ Host; shortnames -> "" end),
    {ok, _} = net_kernel:start([Me, Mode]),
    erlang:set_cookie(node(), list_to_atom(Cookie)),
    Selected = case Only of [] -> checks(); _ -> [list_to_atom(C) || C <- Only] end,
    Results = [run(C, Node) || C <- Selected],
    halt(case lists:all(fun(R) -> R end, Results) of true -> 0; false -> 1 end);
main(_) ->
    io:format("usage: peer_check.escript TargetNode Cookie [Check ...]~n"),
    halt(2).

run(Check, Node) ->
    Result = try check(Check, Node) catch C:R:S -> {fail, io_lib:format("~p:~p ~p", [C, R, S])} end,
    case Result of
        ok -> io:format("PASS ~p~n", [Check]), true;
        {fail, Why} -> io:format("FAIL ~p: ~s~n", [Check, Why]), false
    end.

expect(true, _) -> ok;
expect(false, Why) -> {fail, Why}.

check(ping, N) ->
    R = net_adm:ping(N),
    expect(R =:= pong, io_lib:format("net_adm:ping returned ~p", [R]));
check(listed_hidden, N) ->
    pong = net_adm:ping(N),
    expect(lists:member(N, nodes(hidden)), io_lib:format("nodes(hidden) = ~p", [nodes(hidden)]));
check(reg_send_and_reply, N) ->
    {cpp_echo, N} ! {self(), hello},
    receive
        {echo, hello, P} -> expect(node(P) =:= N, io_lib:format("the reply came from ~p", [node(P)]))
    after 5000 -> {fail, "no reply in 5 s"}
    end;
check(gen_server_call, N) ->
    R = gen_server:call({cpp_echo, N}, req1, 5000),
    expect(R =:= {echo, req1}, io_lib:format("gen_server:call returned ~p", [R]));
check(gen_server_call_noproc, N) ->
    R = (catch gen_server:call({no_such_process, N}, req1, 5000)),
    expect(element(1, element(2, R)) =:= noproc, io_lib:format("the call ended with ~p", [R]));
check(term_roundtrip, N) ->
    T = {1, -5, 255, 256, 1 bsl 70, -(1 bsl 70), -(1 bsl 300), 3.25, -0.5, <<1:3>>, <<"bin">>,
         #{a => [1, 2], <<"k">> => {x}}, make_ref(), self(), "abc", [a | b], {}, [],
         'ünïcödé', fun lists:map/2, list_to_tuple(lists:seq(1, 300)), lists:seq(1, 70000)},
    {cpp_echo, N} ! {self(), T},
    receive
        {echo, T2, _} -> expect(T2 =:= T, io_lib:format("came back as ~p", [T2]))
    after 5000 -> {fail, "no reply in 5 s"}
    end;
check(big_message, N) ->
    B = crypto:strong_rand_bytes(1000000),
    {cpp_echo, N} ! {self(), B},
    receive
        {echo, B2, _} -> expect(B2 =:= B, "the binary came back changed")
    after 10000 -> {fail, "no reply in 10 s"}
    end;
check(link_exit_propagation, N) ->
    process_flag(trap_exit, true),
    {cpp_echo, N} ! {self(), hello},
    P = receive {echo, hello, Pid} -> Pid after 5000 -> error(no_echo) end,
    link(P),
    P ! {self(), exit_me},
    R = receive {'EXIT', P, Why} -> Why after 5000 -> timeout end,
    process_flag(trap_exit, false),
    expect(R =:= bye, io_lib:format("the link delivered ~p", [R]));
check(monitor_down_on_disconnect, N) ->
    pong = net_adm:ping(N),
    true = lists:member(N, nodes(hidden)),
    Ref = monitor(process, {cpp_echo, N}),
    monitor_node(N, true),
    {cpp_echo, N} ! {self(), disconnect},
    D = receive {'DOWN', Ref, process, Who, Why} -> {Who, Why} after 5000 -> timeout end,
    ND = receive {nodedown, N} -> nodedown after 5000 -> timeout end,
    expect(D =:= {{cpp_echo, N}, noconnection} andalso ND =:= nodedown,
           io_lib:format("got ~p and ~p", [D, ND]));
check(erpc_call, N) ->
    R = erpc:call(N, math_cpp, add, [40, 2], 5000),
    expect(R =:= 42, io_lib:format("erpc:call returned ~p", [R]));
check(rpc_call_errors, N) ->
    Undef = rpc:call(N, math_cpp, nope, [1], 5000),
    Badarg = rpc:call(N, math_cpp, add, [a, 1], 5000),
    Raised = try erpc:call(N, math_cpp, nope, [], 5000) catch error:{exception, undef, _} -> undef end,
    expect(Undef =:= {badrpc, {'EXIT', {undef, [{math_cpp, nope, 1, []}]}}} andalso
           Badarg =:= {badrpc, {'EXIT', {badarg, [{math_cpp, add, 2, []}]}}} andalso Raised =:= undef,
           io_lib:format("got ~p, ~p and ~p", [Undef, Badarg, Raised]));
check(rpc_block_call, N) ->
    R = rpc:block_call(N, math_cpp, add, [5, 6], 5000),
    expect(R =:= 11, io_lib:format("rpc:block_call returned ~p", [R]));
check(erpc_cast_and_spawn, N) ->
    ok = erpc:cast(N, math_cpp, add, [1, 2]),
    P = spawn(N, math_cpp, add, [1, 2]),
    Ref = monitor(process, P),
    R = receive {'DOWN', Ref, process, P, Why} -> Why after 5000 -> timeout end,
    expect(node(P) =:= N andalso (R =:= normal orelse R =:= noproc),
           io_lib:format("spawned ~p, which ended with ~p", [P, R]));
check(counter_call, N) ->
    gen_server:cast({counter, N}, reset),
    A = gen_server:call({counter, N}, get, 5000),
    B = gen_server:call({counter, N}, {add, 5}, 5000),
    expect({A, B} =:= {0, 5}, io_lib:format("get, then {add, 5} returned ~p", [{A, B}])).
