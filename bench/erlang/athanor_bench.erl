%% athanor_bench: the Athanor benchmark workloads, written in plain Erlang/OTP.
%%
%% This is the reference point the C++ runtime is compared against, so it is
%% written the way an Erlang engineer would write it: plain processes,
%% spawn/receive/!, spawn_monitor, no NIFs and no tuning flags beyond +S/+P.
%%
%% Run (see bench/compare.sh):
%%   erlc -o build/bench-erlang bench/erlang/athanor_bench.erl
%%   erl -noshell +S 2:2 +P 20000000 -pa build/bench-erlang \
%%       -eval 'athanor_bench:main(["ping_pong","--n","2000000"]).'
%%
%% Arguments: <workload> [--n N] [--schedulers S] [--hogs H] [--checkpoint 0|1]
%%            [--laps L]
%% Output: exactly one JSON object on one line on stdout; diagnostics go to
%% stderr.  The VM halts with status 0 on success, 1 on error.
-module(athanor_bench).

-export([main/1]).
%% gen_server callbacks for the gen_call workload (this module is also the server).
-export([init/1, handle_call/3, handle_cast/2]).

-define(DEFAULT_N, #{"spawn_idle" => 1000000,
                     "ping_pong" => 2000000,
                     "ring" => 10000,
                     "fan_out" => 1000000,
                     "create_destroy" => 1000000,
                     "fairness" => 500,
                     "gen_call" => 1000000}).

%% Fairness: interval between pings, and the hogs' arithmetic.
-define(PING_INTERVAL_MS, 10).

%%% ---------------------------------------------------------------------------
%%% Entry point
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
                     io:format(standard_error, "athanor_bench: ~p:~p~n~p~n",
                               [Class, Reason, Stack]),
                     1
             end,
    erlang:halt(Status).

run(#{bench := Bench} = Opts) ->
    S = set_schedulers(Bench, maps:get(schedulers, Opts)),
    N = case {maps:get(n, Opts), maps:find(Bench, ?DEFAULT_N)} of
            {_, error} -> error({unknown_workload, Bench});
            {undefined, {ok, Default}} -> Default;
            {N0, _} -> N0
        end,
    Common = [{bench, Bench}, {system, <<"erlang">>}, {n, N}, {schedulers, S}],
    Common ++ workload(Bench, N, Opts).

workload("spawn_idle", N, _) ->
    {Ns, NsStarted, Bytes} = spawn_idle(N),
    [{ns_per_spawn, Ns / N}, {bytes_per_process, Bytes / N},
     {ns_per_spawn_started, NsStarted / N}];
workload("ping_pong", N, _) ->
    Ns = ping_pong(N),
    [{ns_per_roundtrip, Ns / N}];
workload("ring", N, #{laps := Laps}) ->
    Ns = ring(N, Laps),
    [{laps, Laps}, {hops_per_sec, N * Laps / (Ns / 1.0e9)}];
workload("fan_out", N, _) ->
    Ns = fan_out(N),
    [{msgs_per_sec, 2 * N / (Ns / 1.0e9)}];
workload("create_destroy", N, _) ->
    Ns = create_destroy(N),
    [{ns_per_cycle, Ns / N}];
workload("fairness", N, #{hogs := Hogs, checkpoint := Checkpoint}) ->
    {P50, P99, Max} = fairness(N, Hogs),
    [{hogs, Hogs}, {checkpoint, Checkpoint},
     {p50_us, P50}, {p99_us, P99}, {max_us, Max}];
workload("gen_call", N, _) ->
    Ns = gen_call(N),
    [{ns_per_call, Ns / N}];
workload(Other, _, _) ->
    error({unknown_workload, Other}).

%%% ---------------------------------------------------------------------------
%%% spawn_idle: N processes blocked in receive; spawn time and memory.
%%% ---------------------------------------------------------------------------

spawn_idle(N) ->
    Baseline = erlang:system_info(process_count),
    garbage_collect(),
    RssBefore = rss_bytes(),
    T0 = now_ns(),
    Pids = spawn_many(N, fun idle/0),
    T1 = now_ns(),
    %% New processes start asynchronously: read the RSS only once every one
    %% of them has run up to its receive (T2 - T0 is reported separately).
    wait_run_queues_empty(),
    T2 = now_ns(),
    RssAfter = rss_bytes(),
    stop_all(Pids),
    wait_process_count(Baseline),
    {T1 - T0, T2 - T0, RssAfter - RssBefore}.

idle() ->
    receive stop -> ok end.

%%% ---------------------------------------------------------------------------
%%% gen_call: one client calls one gen_server N times (gen_server:call/3).
%%% ---------------------------------------------------------------------------

gen_call(N) ->
    {ok, Server} = gen_server:start_link(?MODULE, [], []),
    Self = self(),
    spawn_link(fun() ->
                       _ = gen_call_loop(Server, 1000, 0),  % warm-up
                       T0 = now_ns(),
                       _ = gen_call_loop(Server, N, 0),
                       Self ! {gen_call_done, now_ns() - T0}
               end),
    receive {gen_call_done, Ns} -> ok end,
    gen_server:stop(Server),
    Ns.

gen_call_loop(_Server, 0, X) ->
    X;
gen_call_loop(Server, K, X) ->
    gen_call_loop(Server, K - 1, gen_server:call(Server, X, 5000)).

init([]) -> {ok, nostate}.
handle_call(X, _From, State) -> {reply, X + 1, State}.
handle_cast(_Msg, State) -> {noreply, State}.

%%% ---------------------------------------------------------------------------
%%% ping_pong: two processes, N request/reply round trips.
%%% ---------------------------------------------------------------------------

ping_pong(N) ->
    Ponger = spawn(fun ponger/0),
    Self = self(),
    Pinger = spawn(fun() ->
                           receive go -> ok end,
                           T0 = now_ns(),
                           pinger(Ponger, N),
                           Self ! {ping_pong_done, now_ns() - T0}
                   end),
    Pinger ! go,
    receive {ping_pong_done, Ns} -> ok end,
    Ponger ! stop,
    Ns.

pinger(_Ponger, 0) ->
    ok;
pinger(Ponger, K) ->
    Ponger ! {ping, self()},
    receive pong -> pinger(Ponger, K - 1) end.

ponger() ->
    receive
        {ping, From} -> From ! pong, ponger();
        stop -> ok
    end.

%%% ---------------------------------------------------------------------------
%%% ring: N processes in a ring, one token passed N * Laps hops.
%%% ---------------------------------------------------------------------------

ring(N, Laps) ->
    Self = self(),
    Pids = spawn_many(N, fun() -> ring_node(Self) end),
    [First | Rest] = Pids,
    lists:foreach(fun({Pid, Next}) -> Pid ! {next, Next} end,
                  lists:zip(Pids, Rest ++ [First])),
    wait_run_queues_empty(),
    T0 = now_ns(),
    First ! N * Laps,                % the token counts the hops still to go
    receive ring_done -> ok end,
    T1 = now_ns(),
    stop_all(Pids),
    T1 - T0.

ring_node(Main) ->
    receive {next, Next} -> ring_loop(Next, Main) end.

ring_loop(Next, Main) ->
    receive
        0 -> Main ! ring_done, ring_loop(Next, Main);
        Hops when is_integer(Hops) -> Next ! Hops - 1, ring_loop(Next, Main);
        stop -> ok
    end.

%%% ---------------------------------------------------------------------------
%%% fan_out: one process sends a request to each of N idle processes and
%%% collects the N replies.
%%% ---------------------------------------------------------------------------

fan_out(N) ->
    Baseline = erlang:system_info(process_count),
    Workers = spawn_many(N, fun fan_worker/0),
    wait_run_queues_empty(),
    Self = self(),
    T0 = now_ns(),
    lists:foreach(fun(W) -> W ! {req, Self} end, Workers),
    collect_replies(N),
    T1 = now_ns(),
    wait_process_count(Baseline),
    T1 - T0.

%% Replies once, then returns (exits normally).
fan_worker() ->
    receive {req, From} -> From ! rep end.

collect_replies(0) -> ok;
collect_replies(K) -> receive rep -> collect_replies(K - 1) end.

%%% ---------------------------------------------------------------------------
%%% create_destroy: N x (spawn + monitor, the process returns at once,
%%% receive its 'DOWN'), strictly in sequence.
%%% ---------------------------------------------------------------------------

create_destroy(N) ->
    T0 = now_ns(),
    create_destroy_loop(N),
    now_ns() - T0.

create_destroy_loop(0) ->
    ok;
create_destroy_loop(K) ->
    {Pid, Ref} = spawn_monitor(fun() -> ok end),
    receive
        {'DOWN', Ref, process, Pid, normal} -> create_destroy_loop(K - 1)
    end.

%%% ---------------------------------------------------------------------------
%%% fairness: H processes spinning on arithmetic, one echo process, and a
%%% pinger (this process) that pings the echo every 10 ms and records the
%%% send-to-reply latency.  The BEAM preempts the hogs after their reduction
%%% budget, so there is no checkpoint to switch on or off here.
%%% ---------------------------------------------------------------------------

fairness(N, NumHogs) ->
    Hogs = [spawn(fun() -> hog(1) end) || _ <- lists:seq(1, NumHogs)],
    Echo = spawn(fun echo/0),
    Start = now_ns(),
    Samples = ping_loop(Echo, Start, 1, N, []),
    lists:foreach(fun(P) -> exit(P, kill) end, [Echo | Hogs]),
    Sorted = lists:sort(Samples),
    {percentile(Sorted, 0.50), percentile(Sorted, 0.99), lists:last(Sorted)}.

hog(X) ->
    hog((X * 1103515245 + 12345) band 16#3ffffff). % stays a small integer

echo() ->
    receive {ping, From} -> From ! pong end,
    echo().

ping_loop(_Echo, _Start, I, N, Acc) when I > N ->
    Acc;
ping_loop(Echo, Start, I, N, Acc) ->
    sleep_until(Start + I * ?PING_INTERVAL_MS * 1000000),
    T0 = now_ns(),
    Echo ! {ping, self()},
    receive pong -> ok end,
    LatencyUs = (now_ns() - T0) / 1000,
    ping_loop(Echo, Start, I + 1, N, [LatencyUs | Acc]).

sleep_until(DeadlineNs) ->
    case DeadlineNs - now_ns() of
        Ns when Ns > 0 ->
            receive after (Ns + 999999) div 1000000 -> ok end;
        _ ->
            ok
    end.

%% Percentile of a sorted, non-empty list: element floor(P * Len) counting
%% from 0 (the same rule as athanor-bench).
percentile(Sorted, P) ->
    Len = length(Sorted),
    lists:nth(min(Len, floor(P * Len) + 1), Sorted).

%%% ---------------------------------------------------------------------------
%%% Helpers
%%% ---------------------------------------------------------------------------

now_ns() ->
    erlang:monotonic_time(nanosecond).

%% Spawn N processes running Fun; returns their pids.
spawn_many(N, Fun) ->
    spawn_many(N, Fun, []).

spawn_many(0, _Fun, Acc) -> Acc;
spawn_many(K, Fun, Acc) -> spawn_many(K - 1, Fun, [spawn(Fun) | Acc]).

stop_all(Pids) ->
    lists:foreach(fun(P) -> P ! stop end, Pids).

%% Wait until every runnable process has run (i.e. freshly spawned processes
%% have reached their receive).
wait_run_queues_empty() ->
    case erlang:statistics(total_run_queue_lengths) of
        0 -> ok;
        _ -> erlang:yield(), wait_run_queues_empty()
    end.

%% Wait until stopped processes have actually exited.
wait_process_count(Baseline) ->
    case erlang:system_info(process_count) =< Baseline of
        true -> ok;
        false -> receive after 1 -> wait_process_count(Baseline) end
    end.

%% Resident set size of this OS process (the whole VM), from /proc.
rss_bytes() ->
    {ok, Status} = file:read_file(["/proc/", os:getpid(), "/status"]),
    [_, AfterKey] = binary:split(Status, <<"VmRSS:">>),
    [Line | _] = binary:split(AfterKey, <<"\n">>),
    [Kb, <<"kB">>] = binary:split(Line, [<<" ">>, <<"\t">>], [global, trim_all]),
    binary_to_integer(Kb) * 1024.

set_schedulers("fairness", undefined) ->
    set_schedulers("fairness", 2);
set_schedulers(_Bench, undefined) ->
    erlang:system_info(schedulers_online);
set_schedulers(_Bench, S) ->
    case erlang:system_info(schedulers) of
        Max when S =< Max ->
            _ = erlang:system_flag(schedulers_online, S),
            S;
        Max ->
            error({too_many_schedulers, S, Max, "start erl with +S S:S"})
    end.

%% Logger output (crash reports etc.) must not end up on stdout.
log_to_stderr() ->
    _ = logger:remove_handler(default),
    ok = logger:add_handler(default, logger_std_h,
                            #{config => #{type => standard_error}}).

parse_args([Bench | Rest]) ->
    parse_opts(Rest, #{bench => Bench, n => undefined, schedulers => undefined,
                       hogs => 4, checkpoint => true, laps => 1000});
parse_args([]) ->
    error(usage).

parse_opts([], Opts) -> Opts;
parse_opts(["--n", V | T], Opts) -> parse_opts(T, Opts#{n => pos_int(V)});
parse_opts(["--schedulers", V | T], Opts) -> parse_opts(T, Opts#{schedulers => pos_int(V)});
parse_opts(["--hogs", V | T], Opts) -> parse_opts(T, Opts#{hogs => list_to_integer(V)});
parse_opts(["--laps", V | T], Opts) -> parse_opts(T, Opts#{laps => pos_int(V)});
parse_opts(["--checkpoint", V | T], Opts) -> parse_opts(T, Opts#{checkpoint => bool(V)});
parse_opts([Other | _], _) -> error({bad_argument, Other}).

pos_int(V) ->
    case list_to_integer(V) of
        I when I > 0 -> I;
        _ -> error({not_positive, V})
    end.

bool(V) when V =:= "1"; V =:= "true" -> true;
bool(V) when V =:= "0"; V =:= "false" -> false.

to_list(A) when is_atom(A) -> atom_to_list(A);
to_list(L) when is_list(L) -> L.

%% Minimal JSON for a flat list of {Key, Value} pairs.
json(Pairs) ->
    ["{", lists:join(",", [[json_value(atom_to_binary(K)), ":", json_value(V)]
                           || {K, V} <- Pairs]), "}"].

json_value(true) -> "true";
json_value(false) -> "false";
json_value(null) -> "null";
json_value(I) when is_integer(I) -> integer_to_list(I);
json_value(F) when is_float(F) -> float_to_list(F, [{decimals, 3}, compact]);
json_value(S) when is_list(S) -> json_value(list_to_binary(S));
json_value(B) when is_binary(B) -> [$", B, $"].
