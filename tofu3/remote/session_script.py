"""The vantage side of a session: the POSIX sh program that ``exec sh -s`` reads on stdin.

The SSH command line is the fixed word list ``exec sh -s``: no quotes, no ``$``, nothing a
login shell (bash, dash, zsh, fish, tcsh, busybox ash) could read differently. Everything
else arrives on stdin, and the shell's own parser reads all of it: first this program, then
one line per job (``tofu3_f``/``tofu3_d`` with their curl config, tokens included, as one
single-quoted word). A job runs in the background and the parser goes back to reading stdin,
so the shell notices at once when the coordinator goes away (stdin ends): its EXIT trap then
ends the running job, which ends its own curl and hashers by pid, and removes the working
directory. The session never signals its process group or its parent (dropbear's session
process shares the group): the job and everything below it (curl, the hashers, and whatever
a curl that is a wrapper script started) are found by pid, through /proc, and ended so.

Each job's results come back in frames (frames.py) carrying the session's nonce, each part
with the vantage's sha256 of it; curl's write-out goes to a file and comes back framed, so
nothing on stderr (curl's progress meter, an rc file's chatter) is ever read as evidence. A
fetch job caps each body file with ``ulimit -f``; its write-out (every transfer's report,
certificates and headers: larger than a small cap) reaches its file through a FIFO and a
``cat`` started before that limit, so the limit never cuts the report short. The job opens
both ends of that FIFO itself and removes it before either starts (nobody opens it by name,
so nobody can be left waiting on it for ever), and a TERM that comes before both their pids
are known is held until they are.

The working directory is the first of ``$TMPDIR``, /tmp, /var/tmp and ~/.cache in which a
private directory (mode 700, 128 random bits in its name, so nobody can have prepared it)
and a FIFO in it can be made.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from tofu3.remote.probe import ABC_SHA256, ABC_SHA512

COMMAND = "exec sh -s"
"""The SSH command line of every session."""

_PROGRAM = r"""N=@NONCE@
T=@NAME@
LC_ALL=C
export LC_ALL
umask 077
J=
d=
HT=
tofu3_tree() {
  q=" $1 "
  more=1
  while [ -n "$more" ]; do
    more=
    for s in /proc/[0-9]*/stat; do
      { read -r l <"$s"; } 2>/dev/null || continue
      p=${l%% *}
      r=${l##*) }
      set -- $r
      case $q in
        *" $2 "*) case $q in *" $p "*) ;; *) q="$q$p " more=1 ;; esac ;;
      esac
    done
  done
  echo $q
}
tofu3_bye() {
  if [ -n "$J" ]; then
    kill -TERM $(tofu3_tree "$J") 2>/dev/null
    wait "$J" 2>/dev/null
  fi
  if [ -n "$d" ]; then rm -rf "$d"; fi
}
trap tofu3_bye EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
tofu3_sum() {
  case $HT in
    openssl) h=$(openssl dgst -sha256 2>/dev/null) ;;
    sha256sum) h=$(sha256sum 2>/dev/null) ;;
    shasum) h=$(shasum -a 256 2>/dev/null) ;;
    *) h= ;;
  esac
  h=${h##*= }
  h=${h%% *}
  printf '%s' "${h:--}"
}
tofu3_end() {
  printf 'TOFU3:%s:%s:end:0:%s\n' "$N" "$1" "$2"
}
tofu3_part() {
  if [ -f "$3" ]; then
    n=$(wc -c <"$3")
    n=$((n + 0))
    h=$(tofu3_sum <"$3")
    printf 'TOFU3:%s:%s:%s:%s:%s\n' "$N" "$1" "$2" "$n" "$h" >>"$o"
    cat "$3" >>"$o"
    echo >>"$o"
  else
    printf 'TOFU3:%s:%s:%s:-1:-\n' "$N" "$1" "$2" >>"$o"
  fi
}
tofu3_out() {
  printf 'TOFU3:%s:%s:end:0:%s\n' "$N" "$1" "$2" >>"$o"
  exec 6<"$o"
  rm -f "$1".*
  cat <&6
  exec 6<&-
}
tofu3_probe() {
  cv=$(curl --version </dev/null 2>/dev/null | head -n 1)
  if command -v openssl >/dev/null 2>&1 &&
    printf abc | openssl dgst -sha256 2>/dev/null | grep -q '= *@ABC256@$' &&
    printf abc | openssl dgst -sha512 2>/dev/null | grep -q '= *@ABC512@$'; then
    HT=openssl
  else
    for c in sha256sum shasum; do
      if command -v "$c" >/dev/null 2>&1; then HT=$c; break; fi
    done
  fi
  tried=
  for b in "${TMPDIR:-}" /tmp /var/tmp "${HOME:-/nonexistent}/.cache"; do
    if [ -z "$b" ]; then tried="$tried,TMPDIR(unset)"; continue; fi
    case $b in */.cache) [ -d "$b" ] || mkdir -m 700 "$b" 2>/dev/null ;; esac
    if mkdir -m 700 "$b/tofu3-$T" 2>/dev/null; then
      if mkfifo "$b/tofu3-$T/f" 2>/dev/null && rm -f "$b/tofu3-$T/f"; then
        d="$b/tofu3-$T"
        break
      fi
      rm -rf "$b/tofu3-$T"
    fi
    tried="$tried,$b"
  done
  sy=$(uname -sm 2>/dev/null </dev/null)
  pf=$(command -v printf 2>/dev/null)
  x="curl=$cv
hash=$HT
dir=$d
tried=$tried
system=$sy
printf=$pf"
  n=$(printf '%s' "$x" | wc -c)
  printf 'TOFU3:%s:0:probe:%s:-\n%s\n' "$N" "$((n + 0))" "$x"
  tofu3_end 0 ok
}
tofu3_kill() {
  if [ -n "$J" ]; then
    kill -TERM $(tofu3_tree "$J") 2>/dev/null
    wait "$J" 2>/dev/null
    J=
  fi
}
tofu3_reap() {
  if [ -n "$J" ]; then wait "$J" 2>/dev/null; J=; fi
}
tofu3_open() {
  c=
  w=
  t=
  trap 't=1' TERM
  if [ -z "$d" ] || ! cd "$d"; then tofu3_end "$1" nodir; return 1; fi
  if ! mkfifo "$1.wp"; then tofu3_end "$1" nofifo; return 1; fi
  exec 8<>"$1.wp" 9<"$1.wp" 7>"$1.wp" 8<&-
  rm -f "$1.wp"
  cat <&9 >"$1.wo" 7>&- 9<&- &
  w=$!
  exec 9<&-
  trap '' XFSZ
  hard=$(ulimit -H -f)
  ulimit -S -f $(($2 / 512 + 2)) 2>/dev/null
}
tofu3_curl() {
  printf '%s' "$1" | curl -q -K - >&7 7>&- &
  c=$!
  trap 'kill -TERM $c $w 2>/dev/null; exit 143' TERM
  if [ -n "$t" ]; then kill -TERM $c $w 2>/dev/null; exit 143; fi
  wait "$c"
  rc=$?
  c=
}
tofu3_close() {
  exec 7>&-
  wait "$w"
  w=
  ulimit -S -f "$hard" 2>/dev/null
  o="$1.out"
  : >"$o"
  tofu3_part "$1" wo "$1.wo"
}
tofu3_fetch() {
  trap - EXIT HUP INT
  tofu3_open "$1" "$3" || return
  tofu3_curl "$4"
  tofu3_close "$1"
  i=0
  while [ "$i" -lt "$2" ]; do
    tofu3_part "$1" "b$i" "$1.$i"
    i=$((i + 1))
  done
  tofu3_out "$1" "$rc"
}
tofu3_f() {
  tofu3_reap
  (tofu3_fetch "$@") &
  J=$!
}
tofu3_token() {
  sed -n 's|.*"token"[[:space:]]*:[[:space:]]*"\([A-Za-z0-9._~+/=-][A-Za-z0-9._~+/=-]*\)".*|\1|p' |
    head -n 1
}
tofu3_chain() {
  trap - EXIT HUP INT
  tofu3_open "$1" "$2" || return
  tofu3_curl "$3"
  k=
  u=-
  if [ "$5" = ok ]; then
    # The next request only if the first was answered 200 (a registry that needs no token).
    if [ "$rc" = 0 ]; then
      case $(head -n 1 "$1.h" 2>/dev/null) in
        HTTP/*" 200"*) tofu3_curl "$4" ;;
      esac
    fi
  else
    if [ "$rc" = 0 ] && [ -f "$1.0" ]; then k=$(tofu3_token <"$1.0"); fi
    if [ -n "$k" ]; then
      tofu3_curl "${4%%@TOFU3-TOKEN@*}$k${4#*@TOFU3-TOKEN@}"
      u=$(printf '%s' "$k" | tofu3_sum)
    fi
  fi
  k=
  tofu3_close "$1"
  printf '%s\n' "$u" >"$1.u"
  tofu3_part "$1" b0 "$1.0"
  tofu3_part "$1" b1 "$1.1"
  tofu3_part "$1" used "$1.u"
  tofu3_out "$1" "$rc"
}
tofu3_t() {
  tofu3_reap
  (tofu3_chain "$@") &
  J=$!
}
tofu3_rel() {
  for f in "$1".*; do
    if [ -p "$f" ]; then exec 7<>"$f"; exec 7<&-; fi
  done
}
tofu3_hasher() {
  case $HT in
    openssl) openssl dgst -sha"$1" <"$2" >"$2.sum" 2>/dev/null & ;;
    sha256sum) sha"$1"sum <"$2" >"$2.sum" 2>/dev/null & ;;
    shasum) shasum -a "$1" <"$2" >"$2.sum" 2>/dev/null & ;;
    *) return 1 ;;
  esac
  p="$p $!"
}
tofu3_download() {
  trap - EXIT HUP INT
  c=
  r=
  p=
  trap 'kill -TERM $c $r $p 2>/dev/null; exit 143' TERM
  if [ -z "$d" ] || ! cd "$d"; then tofu3_end "$1" nodir; return; fi
  i=0
  for bits in $3; do
    if ! mkfifo "$1.$i" || ! tofu3_hasher "$bits" "$1.$i"; then
      tofu3_rel "$1"
      kill -TERM $p 2>/dev/null
      rm -f "$1".*
      tofu3_end "$1" nofifo
      return
    fi
    i=$((i + 1))
  done
  printf '%s' "$4" | curl -q -K - >"$1.wo" &
  c=$!
  wait "$c"
  rc=$?
  c=
  tofu3_rel "$1"
  (while :; do sleep 1; tofu3_rel "$1"; done) >/dev/null 2>&1 &
  r=$!
  wait $p
  p=
  kill -KILL "$r" 2>/dev/null
  wait "$r" 2>/dev/null
  r=
  : >"$1.sums"
  i=0
  while [ "$i" -lt "$2" ]; do
    printf '%s %s\n' "$i" "$(cat "$1.$i.sum" 2>/dev/null)" >>"$1.sums"
    i=$((i + 1))
  done
  o="$1.out"
  : >"$o"
  tofu3_part "$1" wo "$1.wo"
  tofu3_part "$1" sums "$1.sums"
  tofu3_out "$1" "$rc"
}
tofu3_d() {
  tofu3_reap
  (tofu3_download "$@") &
  J=$!
}
tofu3_probe
"""


def program(nonce: str, name: str) -> bytes:
    """The session's program, for ``nonce`` (frames) and the working directory ``name``."""
    text = (
        _PROGRAM.replace("@NONCE@", nonce)
        .replace("@NAME@", name)
        .replace("@ABC256@", ABC_SHA256)
        .replace("@ABC512@", ABC_SHA512)
    )
    return text.encode()


def fetch_job(job: int, count: int, cap: int, config: str) -> bytes:
    """The line that starts a job bringing back ``count`` bodies of at most ``cap`` bytes."""
    return f"tofu3_f {job} {count} {cap} {shlex.quote(config)}\n".encode()


def chain_job(
    job: int, cap: int, first_config: str, then_config: str, *, if_ok: bool = False
) -> bytes:
    """The line that starts a job fetching a token, then (with the token found in its answer
    in place of port.TOKEN_SLOT) one more request: bodies of at most ``cap`` bytes. With
    ``if_ok``, the second request runs as it is, and only if the first was answered 200 (its
    config must dump its headers to ``JOB.h``)."""
    mode = "ok" if if_ok else "token"
    return (
        f"tofu3_t {job} {cap} {shlex.quote(first_config)} {shlex.quote(then_config)} {mode}\n"
    ).encode()


def download_job(job: int, bits: Sequence[str], config: str) -> bytes:
    """The line that starts a job hashing one blob per entry of ``bits`` (``256``, ``512``)."""
    words = " ".join(bits)
    return f"tofu3_d {job} {len(bits)} {shlex.quote(words)} {shlex.quote(config)}\n".encode()


def kill_line() -> bytes:
    """Sent when a job ran out of time: the shell ends it and everything it started."""
    return b"tofu3_kill\n"


def reap_line() -> bytes:
    """Sent once a job's end frame came: the shell waits for (reaps) the job's process."""
    return b"tofu3_reap\n"
