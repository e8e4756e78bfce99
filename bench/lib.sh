# Shared by the bench/*.sh scripts (sourced): what their docs/benchmarks.md sections have in common
# and the writer of one section.

# machine_line
# The doc's "Machine: N CPUs (MODEL), kernel K," line, the same in every section.
machine_line() {
  echo "Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs || echo unknown)), kernel $(uname -r),"
}

# replace_doc_section DOC TITLE SECTION_FILE TMPDIR
# Replaces the section that starts with the line TITLE (up to the next "## " heading) with the
# contents of SECTION_FILE, or appends it if absent; creates DOC with its header if missing.
replace_doc_section() {
  local doc=$1 title=$2 section=$3 tmp=$4
  [[ -f $doc ]] || printf '%s\n' "# Benchmarks" "" \
    "Forge measured side by side with the tools a user would pick instead. Each section is written" \
    "by a script in \`bench/\` and starts with the command that reproduces it (run as root)." >"$doc"
  awk -v title="$title" -v section="$section" '
    function emit(  line) { while ((getline line < section) > 0) print line; done = 1 }
    $0 == title { emit(); skip = 1; next }
    skip && /^## / { skip = 0; print "" }
    !skip { print }
    END { if (!done) { print ""; emit() } }
  ' "$doc" >"$tmp/doc.md"
  cat "$tmp/doc.md" >"$doc" # keep the file's owner and mode
}
