# bench: startup_ratio = median wall time of `t2t -e ''` / that of `lua5.4 -e ''`, same run.
T2T=${T2T:-build/t2t}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
run() { # run N CMD...: prints N wall times in microseconds
  n=$1; shift
  i=0
  while [ $i -lt "$n" ]; do
    s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N)
    echo $(( (e - s) / 1000 ))
    i=$((i + 1))
  done
}
# interleave the two so machine noise hits both alike
: > /tmp/t2t-bench-a.$$; : > /tmp/t2t-bench-b.$$
for r in 1 2 3 4 5 6 7 8 9 10; do
  run 20 "$T2T" -e '' >> /tmp/t2t-bench-a.$$
  run 20 lua5.4 -e '' >> /tmp/t2t-bench-b.$$
done
a=$(median < /tmp/t2t-bench-a.$$); b=$(median < /tmp/t2t-bench-b.$$)
rm -f /tmp/t2t-bench-a.$$ /tmp/t2t-bench-b.$$
echo "bench: startup_t2t_us = $a"
echo "bench: startup_lua_us = $b"
awk -v a="$a" -v b="$b" 'BEGIN { printf "bench: startup_ratio = %.2f\n", a / b }'
