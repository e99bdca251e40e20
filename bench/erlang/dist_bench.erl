%% dist_bench: the distribution workloads of bench/dist_bench.cpp, in plain Erlang/OTP.
%%
%% Two nodes over loopback. The peer node runs peer/0 (registered processes
%% athanor_bench_echo and athanor_bench_sink, the same protocol as `athanor-bench
%% dist_peer`); the driver node runs main/1 against a peer given by --peer, which may be an
%% Erlang node or an Athanor one. Written as an Erlang engineer would: plain processes, `!` and
%% receive, default distribution settings (no tuning flags beyond +S).
%%
%% Run (see bench/dist/compare.sh; use a private EPMD port, a temporary HOME and a cookie):
%%   erlc -o build/bench-erlang bench/erlang/dist_bench.erl
%%   erl -sname p@localhost -setcookie C -noshell +S 2:2 -pa build/bench-erlang \
%%       -eval 'dist_bench:peer().'
%%   erl -sname d@localhost -setcookie C -noshell +S 2:2 -pa build/bench-erlang \
%%       -eval 'dist_bench:main(["dist_ping_pong","--seconds","3","--peer","p@localhost"]).'
%%
%% Workloads: dist_ping_pong [--seconds S], dist_throughput [--size BYTES] [--seconds S]
%% [--window W]; both need --peer NODE. Output: one JSON object on one line on stdout, with
%% the same fields as athanor-bench's; diagnostics on stderr. Halts with 0 on success, 1 on error.
%%
%% Protocol (echo and sink; the same on both systems):
%%   echo: {hello, From} -> From ! {echo, self(), System};  {From, Msg} -> From ! Msg;
%%         {info, From} -> From ! {info, System, Schedulers, ReliefThreads}
%%   sink: {hello, From} -> From ! {sink, self(), System};  {start, From, K} starts counting
%%         binaries from 0, acking every K with From ! {ack, Count};  {stop, From} -> From ! {done, Count}
-module(dist_bench).

-export([main/1, peer/0, peer/1]).

-define(ECHO, athanor_bench_echo).
-define(SINK, athanor_bench_sink).
-define(SYSTEM, <<"erlang">>).

%%% ---------------------------------------------------------------------------
%%% The peer
%%% ---------------------------------------------------------------------------

%% Registers the echo and the sink, then lives for LifetimeSeconds (default 600) or until
%% killed.
peer() -> peer(600).
peer([Lifetime]) when is_atom(Lifetime) -> peer(list_to_integer(atom_to_list(Lifetime)));
peer(Lifetime) when is_integer(Lifetime) ->
    log_to_stderr(),
    register(?ECHO, spawn(fun echo/0)),
    register(?SINK, spawn(fun() -> sink(self(), 1 bsl 60, 0) end)),
    io:format(standard_error, "dist_peer: node ~s up~n", [node()]),
    receive after Lifetime * 1000 -> erlang:halt(0) end.

echo() ->
    receive
        {From, Msg} when is_pid(From) ->
            From ! Msg,
            echo();
        {hello, From} ->
            From ! {echo, self(), ?SYSTEM},
            echo();
        {info, From} ->
            From ! info(),
            echo();
        _ ->
            echo()
    end.

sink(From, K, Count) ->
    receive
        Bin when is_binary(Bin) ->
            C = Count + 1,
            case C rem K of
                0 -> From ! {ack, C};
                _ -> ok
            end,
            sink(From, K, C);
        {start, F, K1} ->
            sink(F, max(1, K1), 0);
        {stop, F} ->
            F ! {done, Count},
            sink(From, K, Count);
        {hello, F} ->
            F ! {sink, self(), ?SYSTEM},
            sink(From, K, Count);
        {info, F} ->
            F ! info(),
            sink(From, K, Count);
        _ ->
            sink(From, K, Count)
    end.

info() ->
    {info, ?SYSTEM, erlang:system_info(schedulers_online), 0}.

%%% ---------------------------------------------------------------------------
%%% The driver
%%% ---------------------------------------------------------------------------

-spec main([string() | atom()]) -> no_return().
main(Args) ->
    log_to_stderr(),
    Status = try run(parse_args([to_list(A) || A <- Args])) of
                 Result ->
                     io:put_chars([json(Result), $\n]),
                     0
             catch
                 Class:Reason:Stack ->
                     io:format(standard_error, "dist_bench: ~p:~p~n~p~n", [Class, Reason, Stack]),
                     1
             end,
    erlang:halt(Status).

run(#{bench := Bench, peer := Peer} = Opts) when Peer =/= undefined ->
    Seconds = maps:get(seconds, Opts),
    {Echo, _} = find(?ECHO, Peer),
    Fields = workload(Bench, Seconds, Opts, Peer),
    Echo ! {info, self()},
    {PeerSystem, PeerS, PeerRelief} =
        receive {info, Sys, S, R} -> {Sys, S, R} after 5000 -> {<<"?">>, -1, -1} end,
    [{bench, list_to_binary(Bench)}, {system, ?SYSTEM},
     {schedulers, erlang:system_info(schedulers_online)}]
        ++ Fields
        ++ [{peer, PeerSystem}, {peer_node, atom_to_binary(Peer)},
            {peer_schedulers, PeerS}, {peer_relief_threads, PeerRelief}];
run(_) ->
    error({usage, "--peer NODE is required"}).

workload("dist_ping_pong", Seconds, _Opts, Peer) ->
    {Echo, _} = find(?ECHO, Peer),
    _ = ping_pong(Echo, min(1.0, Seconds / 10)),   % warm-up
    {N, Ns, Lats} = ping_pong(Echo, Seconds),
    Sorted = lists:sort(Lats),
    [{n, N}, {seconds, Ns / 1.0e9}, {roundtrips_per_sec, N / (Ns / 1.0e9)},
     {ns_per_roundtrip, Ns / N}, {p50_us, percentile(Sorted, 0.5) / 1000},
     {p99_us, percentile(Sorted, 0.99) / 1000}, {max_us, lists:last(Sorted) / 1000}];
workload("dist_throughput", Seconds, Opts, Peer) ->
    Size = maps:get(size, Opts),
    Window = case maps:get(window, Opts) of
                 undefined -> max(8, min(8000, (8 bsl 20) div Size));
                 W -> W
             end,
    K = max(1, Window div 8),
    {Sink, _} = find(?SINK, Peer),
    Bin = make_binary(Size),
    _ = throughput(Sink, Bin, Window, K, min(1.0, Seconds / 10)),   % warm-up
    {Sent, Ns} = throughput(Sink, Bin, Window, K, Seconds),
    PerSec = Sent / (Ns / 1.0e9),
    [{size, Size}, {window, Window}, {ack_every, K}, {n, Sent}, {seconds, Ns / 1.0e9},
     {msgs_per_sec, PerSec}, {mb_per_s, PerSec * Size / 1.0e6}];
workload(Other, _, _, _) ->
    error({unknown_workload, Other}).

%% The peer's process registered as Name: {Pid, System}. Retries {hello, self()} every 500 ms
%% (the peer may not be up yet) for at most 30 s.
find(Name, Peer) -> find(Name, Peer, 60).

find(Name, Peer, 0) -> error({no_answer, Name, Peer});
find(Name, Peer, Tries) ->
    {Name, Peer} ! {hello, self()},
    receive
        {_Tag, Pid, System} when is_pid(Pid) -> {Pid, System}
    after 500 ->
        find(Name, Peer, Tries - 1)
    end.

%%% ping_pong: {self(), N} to the echo, wait for N; for Seconds.

ping_pong(Echo, Seconds) ->
    T0 = now_ns(),
    pp_loop(Echo, 0, T0, T0 + round(Seconds * 1.0e9), []).

pp_loop(Echo, N, T0, Until, Lats) ->
    T = now_ns(),
    Echo ! {self(), N},
    receive N -> ok end,
    T2 = now_ns(),
    L = [T2 - T | Lats],
    case T2 >= Until of
        true -> {N + 1, T2 - T0, L};
        false -> pp_loop(Echo, N + 1, T0, Until, L)
    end.

%%% throughput: stream Bin to the sink with at most Window unacknowledged, for Seconds; the
%%% clock stops when the sink has answered `stop` (everything sent was received).

throughput(Sink, Bin, Window, K, Seconds) ->
    Sink ! {start, self(), K},
    T0 = now_ns(),
    Sent = tp_loop(Sink, Bin, Window, 0, 0, T0 + round(Seconds * 1.0e9)),
    Sink ! {stop, self()},
    wait_done(Sent),
    {Sent, now_ns() - T0}.

tp_loop(Sink, Bin, Window, Sent, Acked, Until) ->
    Sent1 = fill(Sink, Bin, Window - (Sent - Acked), Sent),
    receive {ack, C} -> ok end,
    case now_ns() >= Until of
        true -> Sent1;
        false -> tp_loop(Sink, Bin, Window, Sent1, C, Until)
    end.

fill(_Sink, _Bin, N, Sent) when N =< 0 -> Sent;
fill(Sink, Bin, N, Sent) ->
    Sink ! Bin,
    fill(Sink, Bin, N - 1, Sent + 1).

wait_done(Sent) ->
    receive
        {done, Sent} -> ok;
        {done, Other} -> error({sink_counted, Other, of_sent, Sent});
        {ack, _} -> wait_done(Sent)
    end.

make_binary(Size) ->
    list_to_binary([(I * 131 + 7) band 255 || I <- lists:seq(0, Size - 1)]).

%%% ---------------------------------------------------------------------------
%%% Helpers
%%% ---------------------------------------------------------------------------

now_ns() ->
    erlang:monotonic_time(nanosecond).

percentile(Sorted, P) ->
    Len = length(Sorted),
    lists:nth(min(Len, floor(P * Len) + 1), Sorted).

%% Logger output must not end up on stdout.
log_to_stderr() ->
    _ = logger:remove_handler(default),
    ok = logger:add_handler(default, logger_std_h, #{config => #{type => standard_error}}).

parse_args([Bench | Rest]) ->
    parse_opts(Rest, #{bench => Bench, seconds => 3, size => 100, window => undefined,
                       peer => undefined});
parse_args([]) ->
    error(usage).

parse_opts([], Opts) -> Opts;
parse_opts(["--seconds", V | T], Opts) -> parse_opts(T, Opts#{seconds => pos_int(V)});
parse_opts(["--size", V | T], Opts) -> parse_opts(T, Opts#{size => pos_int(V)});
parse_opts(["--window", V | T], Opts) -> parse_opts(T, Opts#{window => pos_int(V)});
parse_opts(["--peer", V | T], Opts) -> parse_opts(T, Opts#{peer => list_to_atom(V)});
parse_opts(["--schedulers", _ | T], Opts) -> parse_opts(T, Opts);   % given to erl as +S S:S
parse_opts([Other | _], _) -> error({bad_argument, Other}).

pos_int(V) ->
    case list_to_integer(V) of
        I when I > 0 -> I;
        _ -> error({not_positive, V})
    end.

to_list(A) when is_atom(A) -> atom_to_list(A);
to_list(L) when is_list(L) -> L.

%% Minimal JSON for a flat list of {Key, Value} pairs.
json(Pairs) ->
    ["{", lists:join(",", [[json_value(atom_to_binary(K)), ":", json_value(V)]
                           || {K, V} <- Pairs]), "}"].

json_value(I) when is_integer(I) -> integer_to_list(I);
json_value(F) when is_float(F) -> float_to_list(F, [{decimals, 3}, compact]);
json_value(S) when is_list(S) -> json_value(list_to_binary(S));
json_value(B) when is_binary(B) -> [$", B, $"].
