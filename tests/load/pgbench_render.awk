# tests/load/pgbench_render.awk - turns a pgbench template of tests/load/ into
# what scripts/bench needs (see the header of pgbench_registration.sql).
#
#   awk -v mode=render -f pgbench_render.awk T.sql   the runnable pgbench script:
#        comments dropped, \set lines kept, each statement's $n replaced by the
#        expression of its `-- bind $n EXPR` line
#   awk -v mode=copies -f pgbench_render.awk T.sql   one line per statement:
#        "NAME<TAB>SQL" with the verbatim copy (still $n), for the drift check
#
# pgbench takes every ":word" for a variable, even inside a string literal
# (the service's 'HH24:MI:SS'), so render writes such a colon as chr(58):
# 'HH24' || chr(58) || 'MI', a constant the planner folds.
#
# Template grammar: `-- service-statement: NAME` opens the description of the
# next statement, `-- bind $N EXPR` lines follow it; statements are the
# non-comment, non-backslash lines, each ending with a line that ends in ';'.
BEGIN { nnames = 0; nstmt = 0; cur = "" }

function colons_out_of_literals(s,    out, i, c, quoted) {
    out = ""
    quoted = 0
    for (i = 1; i <= length(s); i++) {
        c = substr(s, i, 1)
        if (c == "'")
            quoted = !quoted
        if (quoted && c == ":" && substr(s, i + 1, 1) ~ /[A-Za-z0-9_]/)
            out = out "' || chr(58) || '"
        else
            out = out c
    }
    return out
}

/^-- service-statement:/ { names[++nnames] = $3; next }
/^-- bind \$[0-9]+ / {
    n = substr($3, 2) + 0
    expr = $0
    sub(/^-- bind \$[0-9]+ /, "", expr)
    bind[nnames, n] = expr
    nbind[nnames] = (n > nbind[nnames] ? n : nbind[nnames])
    next
}
/^--/ || /^[ \t]*$/ { next }
/^\\/ { if (mode == "render") print; next }

{
    cur = cur (cur == "" ? "" : "\n") $0
    if ($0 ~ /;[ \t]*$/) {
        nstmt++
        if (mode == "copies") {
            text = cur
            gsub(/\n/, " ", text)
            print names[nstmt] "\t" text
        } else {
            cur = colons_out_of_literals(cur)
            # Highest numbers first, so that $1 never eats the start of $12.
            for (n = nbind[nstmt]; n >= 1; n--)
                if ((nstmt, n) in bind) {
                    repl = bind[nstmt, n]
                    gsub(/&/, "\\\\&", repl)
                    gsub("\\$" n, repl, cur)
                }
            print cur
        }
        cur = ""
    }
}

END {
    if (cur != "") { print "pgbench_render.awk: statement without a final ';'" > "/dev/stderr"; exit 1 }
    if (nstmt != nnames) {
        print "pgbench_render.awk: " nstmt " statement(s) but " nnames " service-statement line(s)" > "/dev/stderr"
        exit 1
    }
}
