#!/bin/sh
# word_count.sh - counts lines, words and characters of parameters.text and
# lists its ten most frequent words.  Runs on busybox sh + awk only (the
# rootfs has no other tools); the daemon sets EDGECD_INPUT/EDGECD_OUTPUT,
# which also let it run by hand outside a container.
#
# Reading JSON with awk, and its limits:
#  - input.json is read whole; the first "text" key followed by a string is
#    used (the schema allows no other key, so that is the top-level one).
#  - escapes \" \\ \/ \b \f \n \r \t are decoded; \uXXXX is kept verbatim
#    (6 characters: the text stays valid when written back out);
#    any other escape, an unterminated string or a "text" that is not a
#    string is a bad input (exit 2).
#  - lines: newline characters, plus one for an unterminated last line.
#    words: runs separated by space, tab, newline, CR, VT or FF.
#    chars: UTF-8 code points (continuation bytes are not counted).
#  - top_words: words lowercased (ASCII), leading/trailing ASCII punctuation
#    stripped, empty ones dropped; by count, ties in byte order.
#
# busybox awk ignores write errors, so awk only computes: its output is
# captured and written by the shell's printf, which does report them.
# Exit: 2 bad input, 3 result not written, 1 anything else.
set -u

in=${EDGECD_INPUT:-/input/input.json}
out=${EDGECD_OUTPUT:-/output}

fail() {
        printf 'word_count: %s\n' "$2" >&2
        exit "$1"
}

[ -r "$in" ] || fail 1 "read $in: cannot open"

json=$(LC_ALL=C awk -v path="$in" '
function bad(msg) {
        print "ERROR " msg
        exit 2
}
# JSON string escaping for output.  Bytes >= 0x80 pass through: the input
# was valid UTF-8 and words are split only at ASCII characters.  The only
# control character a word can hold is a decoded \b (raw ones are refused,
# the other escapes decode to separators); the loop covers any other.
function jstr(s,    r, c) {
        gsub(/\\/, "\\\\", s)
        gsub(/"/, "\\\"", s)
        gsub(/\010/, "\\b", s)
        if (s !~ /[\001-\037]/)
                return "\"" s "\""
        r = ""
        while (match(s, /[\001-\037]/)) {
                c = substr(s, RSTART, 1)
                r = r substr(s, 1, RSTART - 1) sprintf("\\u%04x", ord[c])
                s = substr(s, RSTART + 1)
        }
        return "\"" r s "\""
}
BEGIN {
        for (i = 1; i < 32; i++)
                ord[sprintf("%c", i)] = i

        s = ""
        nl = 0
        while ((rc = (getline line < path)) > 0) {
                s = s (nl++ ? "\n" : "") line
        }
        if (rc < 0)
                bad("read " path ": cannot read")
        if (s ~ /^[ \t\r\n]*$/)
                bad(path ": empty input")
        # Raw control characters are invalid JSON anywhere but as
        # whitespace; refusing them also frees \001 and \002 as markers.
        if (s ~ /[\001-\010\013\014\016-\037]/)
                bad(path ": invalid JSON: raw control character")

        # \\ first, so that \\" is a backslash before a closing quote.
        gsub(/\\\\/, "\001", s)
        gsub(/\\"/, "\002", s)

        if (!match(s, /"text"[ \t\r\n]*:[ \t\r\n]*/))
                bad("text is missing")
        s = substr(s, RSTART + RLENGTH)
        if (substr(s, 1, 1) != "\"")
                bad("text must be a string")
        s = substr(s, 2)
        end = index(s, "\"")
        if (end == 0)
                bad(path ": invalid JSON: unterminated string")
        t = substr(s, 1, end - 1)
        if (t ~ /[\n\r\t]/)
                bad(path ": invalid JSON: raw control character in string")

        # Every backslash left must start a valid escape.
        chk = t
        gsub(/\\[bfnrt\/]/, "", chk)
        gsub(/\\u[0-9A-Fa-f][0-9A-Fa-f][0-9A-Fa-f][0-9A-Fa-f]/, "", chk)
        if (index(chk, "\\"))
                bad(path ": invalid JSON: bad escape in text")

        gsub(/\\n/, "\n", t)
        gsub(/\\t/, "\t", t)
        gsub(/\\r/, "\r", t)
        gsub(/\\b/, "\010", t)
        gsub(/\\f/, "\014", t)
        gsub(/\\\//, "/", t)
        gsub(/\002/, "\"", t)
        gsub(/\001/, "\\", t)

        c = t
        chars = length(t) - gsub(/[\200-\277]/, "", c)
        c = t
        lines = gsub(/\n/, "", c)
        if (t != "" && substr(t, length(t)) != "\n")
                lines++

        nw = split(t, w, "[ \t\n\r\013\014]+")
        words = 0
        for (i = 1; i <= nw; i++) {
                if (w[i] == "")
                        continue
                words++
                x = tolower(w[i])
                sub(/^[\041-\057\072-\100\133-\140\173-\176]+/, "", x)
                sub(/[\041-\057\072-\100\133-\140\173-\176]+$/, "", x)
                if (x != "")
                        cnt[x]++
        }

        # Top 10 by insertion: count descending, then word ascending.
        top = 0
        for (x in cnt) {
                k = cnt[x]
                if (top == 10 && (k < tc[10] || (k == tc[10] && x > tw[10])))
                        continue
                j = (top < 10) ? ++top : 10
                while (j > 1 && (tc[j - 1] < k || (tc[j - 1] == k && tw[j - 1] > x))) {
                        tc[j] = tc[j - 1]
                        tw[j] = tw[j - 1]
                        j--
                }
                tc[j] = k
                tw[j] = x
        }

        printf "{\"lines\":%d,\"words\":%d,\"chars\":%d,\"top_words\":[", lines, words, chars
        for (i = 1; i <= top; i++)
                printf "%s{\"word\":%s,\"count\":%d}", (i > 1 ? "," : ""), jstr(tw[i]), tc[i]
        printf "]}\n"
        exit 0
}')
status=$?
case $status in
0) ;;
2) fail 2 "${json#ERROR }" ;;
*) fail 1 "awk failed with status $status" ;;
esac

tmp=$out/result.json.tmp
printf '%s\n' "$json" > "$tmp" || { rm -f "$tmp"; fail 3 "write $tmp: failed (disk full?)"; }
mv -f "$tmp" "$out/result.json" || { rm -f "$tmp"; fail 3 "rename $tmp: failed"; }
exit 0
