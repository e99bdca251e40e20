#!/usr/bin/env bash
# Tests athanor-term against a real erl: `cli_test.sh path/to/athanor-term`.
#
# For each term below, erl prints term_to_binary(T) as hex and io:format("~w", [T]); the test
# checks that `encode --hex` gives erl's bytes, that `decode --hex` of erl's bytes prints erl's
# text, and that the binary (non-hex) forms agree. Terms only erl can make (funs, ports, refs)
# are checked in the decode direction. Then bad input must exit with status 2 and one line on
# stderr. Exit 77 (skipped) if erl is not installed.
set -uo pipefail

BIN=${1:?usage: cli_test.sh path/to/athanor-term}
command -v erl >/dev/null || { echo "erl not found: skipped"; exit 77; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
failures=0
check() { # name expected actual
  if [ "$2" != "$3" ]; then
    echo "FAIL $1"
    echo "  expected: $2"
    echo "  actual:   $3"
    failures=$((failures + 1))
  fi
}

# Terms in Erlang syntax, one per line (erl evaluates them; athanor-term parses them).
cat >"$TMP/terms" <<'TERMS'
42
-1
255
256
-2147483649
18446744073709551616
-18446744073709551616
123456789012345678901234567890123456789012345678901234567890
1.0e10
-0.5
3.141592653589793
ok
'hello world'
'EXIT'
[]
"abc"
[1,2|3]
<<>>
<<1,2,3>>
<<"text">>
<<"caf\x{e9}"/utf8>>
<<5,1:3>>
<<1:1>>
{}
{ok,[{a,1},{b,2.5}],#{name => <<"Alice">>, 1 => [], {x} => 2.0}}
#{a => #{b => #{c => [1,2,3]}}}
fun lists:map/2
fun erlang:'+'/2
[$a, $\n, 16#FF, 2#1010]
TERMS

# erl writes, per line: hex of term_to_binary(T) TAB ~w of T. The last lines are terms only
# erl can make.
erl -noshell -eval '
  {ok, Data} = file:read_file(hd(init:get_plain_arguments())),
  Lines = [L || L <- string:split(binary_to_list(Data), "\n", all), L =/= ""],
  Eval = fun(S) -> {ok, Toks, _} = erl_scan:string(S ++ "."), {ok, [E]} = erl_parse:parse_exprs(Toks),
                   {value, V, _} = erl_eval:expr(E, []), V end,
  Hex = fun(B) -> [io_lib:format("~2.16.0b", [X]) || <<X>> <= B] end,
  Out = fun(T) -> io:format("~s\t~w~n", [Hex(term_to_binary(T)), T]) end,
  [Out(Eval(L)) || L <- Lines],
  X = 7,
  [Out(T) || T <- [fun() -> ok end, fun(Y) -> X + Y end, hd(erlang:ports()), make_ref(), self(),
                   {fun lists:map/2, [make_ref()]}]],
  halt().' -extra "$TMP/terms" >"$TMP/erl.out" 2>&1 || { echo "erl failed:"; cat "$TMP/erl.out"; exit 1; }

n=$(wc -l <"$TMP/terms")
i=0
while IFS=$'\t' read -r hex printed; do
  i=$((i + 1))
  if [ "$i" -le "$n" ]; then
    term=$(sed -n "${i}p" "$TMP/terms")
    check "encode --hex $term" "$hex" "$(printf '%s' "$term" | "$BIN" encode --hex)"
    check "encode $term (binary)" "$hex" "$(printf '%s.\n' "$term" | "$BIN" encode | od -An -v -tx1 | tr -d ' \n')"
  fi
  check "decode --hex $printed" "$printed" "$(printf '%s' "$hex" | "$BIN" decode --hex)"
  check "decode $printed (binary)" "$printed" "$(printf "$(printf '%s' "$hex" | sed 's/../\\x&/g')" | "$BIN" decode)"
done <"$TMP/erl.out"
[ "$i" -gt "$n" ] || { echo "FAIL: erl answered $i lines for $n terms"; failures=$((failures + 1)); }

# Bad input: status 2 and exactly one line on stderr.
bad() { # name command... (stdin from $input)
  local name=$1; shift
  printf '%s' "$input" | "$@" >/dev/null 2>"$TMP/err"
  local rc=$?
  check "$name: exit status" 2 "$rc"
  check "$name: one line on stderr" 1 "$(wc -l <"$TMP/err")"
}
input='{a'            bad "encode of '{a'" "$BIN" encode
input='Var'           bad "encode of a variable" "$BIN" encode
input='<0.1.0> <0.2.0>' bad "encode of two terms" "$BIN" encode
input='8368'          bad "decode of truncated hex" "$BIN" decode --hex
input='83zz'          bad "decode of non-hex" "$BIN" decode --hex
input='836'           bad "decode of odd hex" "$BIN" decode --hex
input='hello'         bad "decode of non-ETF" "$BIN" decode
input=''              bad "unknown command" "$BIN" frobnicate
input=''              bad "no command" "$BIN"
"$BIN" --help | grep -q "^Usage: athanor-term" || { echo "FAIL --help"; failures=$((failures + 1)); }

if [ "$failures" -ne 0 ]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "athanor-term: all checks passed ($i terms)"
