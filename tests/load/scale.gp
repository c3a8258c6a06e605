# tests/load/scale.gp - constraint B at scale: the leaderboard read through
# the service stays flat while the naive GROUP BY over the log grows.
#   gnuplot -e "data='scale.dat'; out='scale.png'; subtitle='...'" scale.gp
# data: events lb_p50_ms lb_p99_ms naive_ms payload_ms
set terminal pngcairo size 1000,620 noenhanced font ",10"
set output out
set title "EventTrack: top-10 leaderboard vs analytics log size\n" . subtitle
set logscale xy
set autoscale xfix
set offsets graph 0.04, graph 0.04, 0, 0
set format x "%.0s%c"
set xlabel "analytics events in the log (log scale)"
set ylabel "milliseconds (log scale)"
set grid
set key top left
plot data using 1:3 with linespoints lw 2 pt 7 title "leaderboard through the service: p99 (wrk, 16 conn.)", \
     ''   using 1:2 with linespoints lw 2 pt 6 title "leaderboard through the service: p50 (wrk)", \
     ''   using 1:4 with linespoints lw 2 pt 5 title "naive GROUP BY leaderboard columns (median, psql)", \
     ''   using 1:5 with linespoints lw 2 pt 9 title "naive GROUP BY payload->>'speaker_id' (median, psql)"
