# tests/load/latency.gp - latency per path: wrk's p50 and p99 (client side,
# 16 connections) and the service's own p99 (/metrics histogram bucket).
#   gnuplot -e "data='latency.dat'; out='latency.png'; subtitle='...'" latency.gp
# data: "label" p50_ms p99_ms server_p99_ms
set terminal pngcairo size 1200,640 noenhanced font ",10"
set output out
set title "EventTrack: latency per path at 16 connections\n" . subtitle
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set ylabel "milliseconds, log scale"
set xtics scale 0 font ",9"
set grid ytics
set key top left
plot data using 2:xtic(1) title "p50 (wrk)" lc rgb "#2ca02c", \
     ''   using 3 title "p99 (wrk)" lc rgb "#d62728", \
     ''   using 4 title "p99 in the service (/metrics bucket bound)" lc rgb "#9467bd"
