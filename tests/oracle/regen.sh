#!/usr/bin/env bash
# Regenerates (or, with --check, verifies) the tshark goldens used by tests/oracle.rs.
#
#   tests/oracle/regen.sh           rewrite tests/oracle/golden/*.tsv from tshark
#   tests/oracle/regen.sh --check   fail if the installed tshark disagrees with the goldens
#
# For every capture in manifest.tsv it runs tshark as the frame oracle (two passes, TCP and
# body desegmentation on, the capture's non-standard HTTP ports decoded as HTTP) and keeps
#  - golden/NAME.tsv: one line per frame that shows at least one HTTP message: frame,
#    tcp.stream, request methods, response codes (several messages in one frame are
#    comma-joined, as tshark prints them);
#  - streams/NAME.tsv: frame and tcp.stream of every frame that has one;
#  - conv/NAME.tsv: tshark's TCP conversation statistics (-z conv,tcp): endpoint A, endpoint
#    B, frames B->A, frames A->B, one line per conversation;
# A capture with a key log beside it (NAME.keys) is read with it (-o tls.keylog_file), so
# its goldens hold what the decrypted traffic shows.
#  - tls/NAME.tsv (captures with TLS only; their HTTP ports decoded as TLS for it): frame,
#    tcp.stream, the TLS record content types,
#    handshake types, SNI, supported versions (a ServerHello's is the one chosen) and alert
#    descriptions tshark shows in the frame;
#  - tcpa/NAME.tsv (captures where tshark flags any): frame, tcp.stream, and which of
#    tshark's TCP analysis flags it sets there: retransmission (tcp.analysis.retransmission),
#    lost_segment ("previous segment not captured"), duplicate_ack.
set -euo pipefail
cd "$(dirname "$0")/../.."
check=0
[[ ${1:-} == --check ]] && check=1
command -v tshark >/dev/null || { echo "regen.sh: tshark is not installed (apt-get install -y tshark)" >&2; exit 2; }
out=tests/oracle/golden
streams=tests/oracle/streams
conv=tests/oracle/conv
tls=tests/oracle/tls
tcpa=tests/oracle/tcpa
mkdir -p "$out" "$streams" "$conv" "$tls" "$tcpa"
fail=0
# settle always|optional GOT GOLDEN [diff]: with --check, says (and with `diff` shows) how GOT
# differs from GOLDEN; else writes it: `always` without empty lines, even when empty;
# `optional` only when there is something, removing the file otherwise.
settle() {
  local kind=$1 got=$2 file=$3 show=${4:-}
  if ((check)); then
    if [[ "$got" != "$(cat "$file" 2>/dev/null)" ]]; then
      echo "differs from tshark: $file" >&2
      [[ -n $show ]] && { diff <(echo "$got") "$file" >&2 || true; }
      fail=1
    fi
  elif [[ $kind == always ]]; then
    printf '%s\n' "$got" | sed '/^$/d' > "$file"
  elif [[ -n $got ]]; then
    printf '%s\n' "$got" > "$file"
  else
    rm -f "$file"
  fi
}
while IFS=$'\t' read -r file ports; do
  [[ -z $file || $file == \#* ]] && continue
  args=(); tls_args=()
  if [[ $ports != - ]]; then
    IFS=, read -ra ps <<<"$ports"
    for p in "${ps[@]}"; do args+=(-d "tcp.port==$p,http"); tls_args+=(-d "tcp.port==$p,tls"); done
  fi
  # A capture's key log, NAME.keys beside it, decrypts its TLS (as the tests give it to
  # capdiag); a pcapng's own secrets need no option.
  keys="${file%.*}.keys"
  if [[ -f $keys ]]; then
    args+=(-o "tls.keylog_file:$keys"); tls_args+=(-o "tls.keylog_file:$keys")
  fi
  golden="$out/$(echo "$file" | sed 's#^tests/corpus/##; s#^samples/#samples-#; s#/#__#g').tsv"
  got=$(tshark -n -2 -r "$file" -o tcp.desegment_tcp_streams:TRUE -o http.desegment_body:TRUE \
          "${args[@]}" -Y http -T fields -E separator=/t \
          -e frame.number -e tcp.stream -e http.request.method -e http.response.code 2>/dev/null \
        | awk -F'\t' '$3!="" || $4!=""' || true)
  streams_golden="$streams/$(basename "$golden")"
  streams_got=$(tshark -n -r "$file" "${args[@]}" -T fields -e frame.number -e tcp.stream 2>/dev/null \
        | awk -F'\t' '$2!=""' || true)
  conv_golden="$conv/$(basename "$golden")"
  conv_got=$(tshark -n -r "$file" -q -z conv,tcp 2>/dev/null \
        | awk '$2=="<->" {print $1 "\t" $3 "\t" $4 "\t" $7}' || true)
  tls_golden="$tls/$(basename "$golden")"
  # The TLS pass decodes the capture's own ports as TLS (a ClientHello sent to a plain-HTTP
  # port is TLS there).
  tls_got=$(tshark -n -2 -r "$file" "${tls_args[@]}" -Y tls -T fields -E separator=/t \
          -e frame.number -e tcp.stream -e tls.record.content_type -e tls.handshake.type \
          -e tls.handshake.extensions_server_name -e tls.handshake.extensions.supported_version \
          -e tls.alert_message.desc 2>/dev/null || true)
  tcpa_golden="$tcpa/$(basename "$golden")"
  tcpa_got=$(tshark -n -r "$file" "${args[@]}" \
          -Y 'tcp.analysis.retransmission || tcp.analysis.lost_segment || tcp.analysis.duplicate_ack' \
          -T fields -E separator=/t -e frame.number -e tcp.stream -e tcp.analysis.retransmission \
          -e tcp.analysis.lost_segment -e tcp.analysis.duplicate_ack 2>/dev/null \
        | awk -F'\t' '{ f = ""
            if ($3 != "") f = f " retransmission"
            if ($4 != "") f = f " lost_segment"
            if ($5 != "") f = f " duplicate_ack"
            print $1 "\t" $2 "\t" substr(f, 2) }' || true)
  settle always "$got" "$golden" diff
  settle always "$streams_got" "$streams_golden"
  settle always "$conv_got" "$conv_golden"
  settle optional "$tls_got" "$tls_golden"
  settle optional "$tcpa_got" "$tcpa_golden"
done < tests/oracle/manifest.tsv
if ((check)); then
  ((fail)) && { echo "regen.sh: goldens are stale; rerun tests/oracle/regen.sh" >&2; exit 1; }
  echo "tshark goldens: all match $(tshark --version 2>/dev/null | head -1)"
fi
