%% The term_codec workload in Erlang: term_to_binary/1 and binary_to_term/1 throughput on the
%% message mix of bench/term_bench.cpp (see its comment; the same n messages, built the same way).
%%
%%   erlc -o build/bench-erlang bench/erlang/term_codec.erl
%%   erl -noshell -pa build/bench-erlang -eval 'term_codec:main(["--n","10000","--reps","100"]).'
%% prints {"bench":"term_codec","system":"erlang","n":...,"encode_mb_per_s":...,...}.
-module(term_codec).
-export([main/1]).

main(Args) ->
    Opts = parse(Args, #{n => 10000, reps => 100}),
    N = maps:get(n, Opts), Reps = maps:get(reps, Opts),
    Messages = [message(I) || I <- lists:seq(0, N - 1)],
    Encoded = [term_to_binary(M) || M <- Messages],
    Bytes = lists:sum([byte_size(B) || B <- Encoded]),
    T0 = erlang:monotonic_time(nanosecond),
    C1 = encode_loop(Reps, Messages, 0),
    T1 = erlang:monotonic_time(nanosecond),
    C2 = decode_loop(Reps, Encoded, 0),
    T2 = erlang:monotonic_time(nanosecond),
    true = C1 > 0 andalso C2 > 0,
    EncNs = T1 - T0, DecNs = T2 - T1,
    TotalBytes = Bytes * Reps, TotalTerms = N * Reps,
    io:format("{\"bench\":\"term_codec\",\"system\":\"erlang\",\"n\":~b,\"reps\":~b,\"schedulers\":1,"
              "\"bytes_per_term\":~.1f,\"encode_mb_per_s\":~.1f,\"decode_mb_per_s\":~.1f,"
              "\"encode_terms_per_s\":~b,\"decode_terms_per_s\":~b}~n",
              [N, Reps, Bytes / N, TotalBytes / EncNs * 1.0e3, TotalBytes / DecNs * 1.0e3,
               round(TotalTerms / EncNs * 1.0e9), round(TotalTerms / DecNs * 1.0e9)]),
    halt(0).

parse(["--n", V | Rest], O) -> parse(Rest, O#{n => list_to_integer(V)});
parse(["--reps", V | Rest], O) -> parse(Rest, O#{reps => list_to_integer(V)});
parse([_, _ | Rest], O) -> parse(Rest, O);   % --schedulers etc.: not used
parse(_, O) -> O.

encode_loop(0, _, Acc) -> Acc;
encode_loop(R, Ms, Acc) -> encode_loop(R - 1, Ms, encode_all(Ms, Acc)).
encode_all([], Acc) -> Acc;
encode_all([M | Ms], Acc) -> encode_all(Ms, Acc + byte_size(term_to_binary(M))).

decode_loop(0, _, Acc) -> Acc;
decode_loop(R, Bs, Acc) -> decode_loop(R - 1, Bs, decode_all(Bs, Acc)).
decode_all([], Acc) -> Acc;
decode_all([B | Bs], Acc) -> _ = binary_to_term(B), decode_all(Bs, Acc + 1).

message(I) ->
    case I rem 5 of
        R when R =< 1 ->
            {broadcast, <<"room:lobby">>, <<"new_msg">>,
             #{<<"body">> => iolist_to_binary(io_lib:format("message number ~b from the benchmark", [I])),
               <<"user">> => iolist_to_binary(io_lib:format("user_~b", [I])),
               <<"ts">> => 1700000000000 + I, <<"ref">> => I}};
        2 ->
            {'$gen_call', {c:pid(0, 100 + I rem 1000, 0), make_ref()}, {get_user, I, [name, email, roles]}};
        3 ->
            #{joins => #{iolist_to_binary(io_lib:format("user_~b", [I])) =>
                             #{metas => [#{online_at => 1700000000 + I, phx_ref => <<"F1a2b3c4">>, status => away}]}},
              leaves => #{}};
        4 ->
            [{cpu, 0.73}, {mem, 1048576 + I}, {reqs, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}, {lat, 12.5}]
    end.
