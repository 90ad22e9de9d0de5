# bench: startup_ratio = median wall time of `t2t -e ''` / that of `lua5.4 -e ''`, measured
# interleaved in this one run (so machine noise hits both alike).  perl times fork+exec+wait.
T2T=${T2T:-build/t2t}
perl -MTime::HiRes=time -e '
  my ($t2t, $n) = @ARGV;
  sub once { my $s = time; my $pid = fork // die; if (!$pid) {
      open STDOUT, ">/dev/null"; open STDERR, ">/dev/null"; exec @_ or exit 127 }
    waitpid $pid, 0; return time - $s }
  my (@a, @b);
  for (1 .. $n) { push @a, once($t2t, "-e", ""); push @b, once("lua5.4", "-e", "") }
  my $med = sub { my @s = sort { $a <=> $b } @_; $s[$#s / 2] };
  my ($ma, $mb) = ($med->(@a), $med->(@b));
  printf "bench: startup_t2t_ms = %.3f\n", $ma * 1000;
  printf "bench: startup_lua_ms = %.3f\n", $mb * 1000;
  printf "bench: startup_ratio = %.2f\n", $ma / $mb;
' "$T2T" 300
