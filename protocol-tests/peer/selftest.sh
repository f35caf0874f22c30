#!/usr/bin/env bash
# Self-check: smsc.js and esme.js (both node `smpp`) against each other over loopback.
# Each peer reads commands from a fifo and writes JSON lines to a fifo that this script reads
# line by line (read -t is only a failure timeout, never used for synchronisation).
# Usage: bash selftest.sh   (runs `npm ci` first if node_modules/ is missing)
set -euo pipefail
cd "$(dirname "$0")"
[ -d node_modules/smpp ] || npm ci --no-audit --no-fund >&2

TMP=$(mktemp -d)
LOG=$TMP/transcript.log
declare -A IN OUT PID
PASS=0

cleanup() {
  local rc=$?
  for n in "${!PID[@]}"; do kill "${PID[$n]}" 2>/dev/null || true; done
  if [ $rc -ne 0 ]; then echo "--- transcript ($LOG) ---" >&2; cat "$LOG" >&2; fi
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; echo "selftest: $PASS passed, 1 failed"; exit 1; }

# start NAME script args... : run a peer with stdin/stdout on fifos
start() {
  local name=$1; shift
  mkfifo "$TMP/$name.in" "$TMP/$name.out"
  node "$@" <"$TMP/$name.in" >"$TMP/$name.out" 2>>"$TMP/$name.err" &
  PID[$name]=$!
  local fd
  exec {fd}>"$TMP/$name.in"; IN[$name]=$fd
  exec {fd}<"$TMP/$name.out"; OUT[$name]=$fd
}

# stop NAME : close its stdin and expect exit code 0
stop() {
  local name=$1 rc=0 fd
  fd=${IN[$name]}; exec {fd}>&-
  wait "${PID[$name]}" || rc=$?
  fd=${OUT[$name]}; exec {fd}<&-
  unset "PID[$name]"
  [ $rc -eq 0 ] || fail "$name exited with $rc"
}

send() { echo "$1< $2" >>"$LOG"; echo "$2" >&"${IN[$1]}"; }

# expect NAME SUBSTRING... : read NAME's lines until one contains every substring; sets LINE
expect() {
  local name=$1; shift
  while IFS= read -r -t 15 -u "${OUT[$name]}" LINE; do
    echo "$name> $LINE" >>"$LOG"
    local p ok=1
    for p in "$@"; do [[ $LINE == *"$p"* ]] || { ok=0; break; }; done
    if [ $ok -eq 1 ]; then PASS=$((PASS + 1)); return 0; fi
  done
  fail "$name: no line containing: $*"
}

SUBMIT='"destination_addr":"998901234567","source_addr":"5700","registered_delivery":1'
GSM_HEX=48656c6c6f201b65                      # "Hello €" in GSM 03.38 (escape 1B 65)
UCS2_HEX=041f04400438043204350442             # "Привет"
UDH8_HEX=050003aa020148656c6c6f               # 8-bit ref concat UDH + "Hello"
UDH16_HEX=060804beef0202576f726c64            # 16-bit ref concat UDH + "World"
DLR_HEX=$(printf 'id:1 sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 stat:DELIVRD err:000 text:' | od -An -tx1 | tr -d ' \n')

# --- SMSC up
start smsc smsc.js --port 0 --system-id smsflow --password secret
expect smsc '"event":"listening"'
PORT=$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' <<<"$LINE")

# --- wrong password is rejected with ESME_RINVPASWD
start bad esme.js --host 127.0.0.1 --port "$PORT" --system-id smsflow --password wrong
expect bad '"event":"bind_failed","command_status":14'
expect smsc '"event":"bind_rejected"' '"command_status":14'
send bad '{"id":1,"cmd":"quit"}'
expect bad '"event":"done","id":1'
stop bad
expect smsc '"event":"disconnected","session":1'

# --- transceiver bind
start esme esme.js --host 127.0.0.1 --port "$PORT" --system-id smsflow --password secret --mode transceiver
expect esme '"event":"bound","command_status":0' '"system_id":"NODESMSC"'
expect smsc '"event":"pdu","session":2,"command":"bind_transceiver"' '"system_id":"smsflow","password":"secret"' '"interface_version":52'
expect smsc '"event":"bound","session":2,"mode":"transceiver"'

# --- submit_sm GSM and UCS-2: raw octets arrive unchanged
send esme "{\"id\":1,\"cmd\":\"submit_sm\",$SUBMIT,\"data_coding\":0,\"esm_class\":0,\"short_message_hex\":\"$GSM_HEX\"}"
expect smsc '"command":"submit_sm"' '"data_coding":0' "\"short_message_hex\":\"$GSM_HEX\"" '"short_message_text":"Hello €"' "08${GSM_HEX}\"}"
expect esme '"event":"done","id":1' '"command_status":0' '"message_id":"1"'
send esme "{\"id\":2,\"cmd\":\"submit_sm\",$SUBMIT,\"data_coding\":8,\"short_message_hex\":\"$UCS2_HEX\"}"
expect smsc '"command":"submit_sm"' '"data_coding":8' "\"short_message_hex\":\"$UCS2_HEX\"" '"short_message_text":"Привет"'
expect esme '"event":"done","id":2' '"command_status":0' '"message_id":"2"'

# --- submit_sm with UDH + SAR TLVs + message_payload + vendor TLV
send esme "{\"id\":3,\"cmd\":\"submit_sm\",$SUBMIT,\"data_coding\":0,\"esm_class\":64,\"short_message_hex\":\"$UDH16_HEX\",\"tlvs\":{\"sar_msg_ref_num\":48879,\"sar_total_segments\":2,\"sar_segment_seqnum\":2,\"tlv_0x1401_hex\":\"abcd\"}}"
expect smsc '"command":"submit_sm"' '"esm_class":64' "\"short_message_hex\":\"$UDH16_HEX\"" '"sar_msg_ref_num":48879' '"sar_total_segments":2' '"sar_segment_seqnum":2' '"tlv_0x1401_hex":"abcd"'
expect esme '"event":"done","id":3' '"message_id":"3"'

# --- deliver_sm with 8-bit UDH
send smsc "{\"id\":10,\"cmd\":\"deliver_sm\",\"source_addr\":\"998901234567\",\"destination_addr\":\"5700\",\"data_coding\":0,\"esm_class\":64,\"short_message_hex\":\"$UDH8_HEX\"}"
expect esme '"event":"pdu"' '"command":"deliver_sm"' '"esm_class":64' "\"short_message_hex\":\"$UDH8_HEX\"" '"short_message_text":"Hello"'
expect smsc '"event":"pdu"' '"command":"deliver_sm_resp"' '"command_status":0'
expect smsc '"event":"done","id":10' '"response_status":0'

# --- deliver_sm with SAR TLVs and message_payload (UCS-2)
send smsc "{\"id\":11,\"cmd\":\"deliver_sm\",\"source_addr\":\"998901234567\",\"destination_addr\":\"5700\",\"data_coding\":8,\"short_message_hex\":\"\",\"tlvs\":{\"sar_msg_ref_num\":7,\"sar_total_segments\":3,\"sar_segment_seqnum\":1,\"message_payload_hex\":\"$UCS2_HEX\"}}"
expect esme '"command":"deliver_sm"' '"data_coding":8' '"short_message_hex":""' '"sar_msg_ref_num":7' '"sar_total_segments":3' '"sar_segment_seqnum":1' "\"message_payload_hex\":\"$UCS2_HEX\"" '020c00020007020e000103020f0001010424000c'
expect smsc '"event":"done","id":11' '"response_status":0'

# --- delivery receipt with TLVs
send smsc "{\"id\":12,\"cmd\":\"deliver_sm\",\"source_addr\":\"998901234567\",\"destination_addr\":\"5700\",\"esm_class\":4,\"short_message_hex\":\"$DLR_HEX\",\"tlvs\":{\"receipted_message_id\":\"1\",\"message_state\":2}}"
expect esme '"command":"deliver_sm"' '"esm_class":4' "\"short_message_hex\":\"$DLR_HEX\"" '"receipted_message_id":"1"' '"message_state":2'
expect smsc '"event":"done","id":12' '"response_status":0'

# --- ESME answers a deliver_sm with a chosen error (esme throttle)
send esme '{"id":4,"cmd":"throttle","count":1}'
expect esme '"event":"done","id":4'
send smsc "{\"id\":13,\"cmd\":\"deliver_sm\",\"source_addr\":\"1\",\"destination_addr\":\"2\",\"short_message_hex\":\"41\"}"
expect esme '"event":"throttled"' '"command_status":88'
expect smsc '"event":"done","id":13' '"response_status":88'

# --- enquire_link both ways
send smsc '{"id":14,"cmd":"enquire_link"}'
expect esme '"event":"pdu"' '"command":"enquire_link"'
expect smsc '"event":"done","id":14' '"response_command":"enquire_link_resp"' '"response_status":0'
send esme '{"id":5,"cmd":"enquire_link"}'
expect smsc '"event":"pdu"' '"command":"enquire_link"'
expect esme '"event":"done","id":5' '"response_command":"enquire_link_resp"' '"command_status":0'

# --- throttle: next submit_sm gets ESME_RTHROTTLED, the one after succeeds
send smsc '{"id":15,"cmd":"throttle","count":1}'
expect smsc '"event":"done","id":15'
send esme "{\"id\":6,\"cmd\":\"submit_sm\",$SUBMIT,\"short_message_hex\":\"41\"}"
expect smsc '"event":"throttled","session":2'
expect esme '"event":"done","id":6' '"command_status":88'
send esme "{\"id\":7,\"cmd\":\"submit_sm\",$SUBMIT,\"short_message_hex\":\"42\"}"
expect esme '"event":"done","id":7' '"command_status":0' '"message_id":"4"'

# --- ESME-initiated unbind
send esme '{"id":8,"cmd":"unbind"}'
expect smsc '"event":"pdu","session":2,"command":"unbind"'
expect esme '"event":"done","id":8' '"response_command":"unbind_resp"' '"command_status":0'
expect esme '"event":"disconnected"'
expect smsc '"event":"disconnected","session":2'
send esme '{"id":9,"cmd":"quit"}'
expect esme '"event":"done","id":9'
stop esme

# --- SMSC-initiated unbind (receiver bind)
start rx esme.js --host 127.0.0.1 --port "$PORT" --system-id smsflow --password secret --mode receiver
expect rx '"event":"bound"' '"mode":"receiver"'
expect smsc '"event":"bound","session":3,"mode":"receiver"'
send smsc '{"id":16,"cmd":"unbind"}'
expect rx '"event":"pdu"' '"command":"unbind"'
expect smsc '"event":"done","id":16' '"response_command":"unbind_resp"' '"response_status":0'
expect smsc '"event":"disconnected","session":3'
stop rx

# --- abrupt close, then a command on the dead connection fails cleanly
start tx esme.js --host 127.0.0.1 --port "$PORT" --system-id smsflow --password secret --mode transmitter
expect tx '"event":"bound"'
send smsc '{"id":17,"cmd":"close"}'
expect smsc '"event":"disconnected","session":4'
expect smsc '"event":"done","id":17,"closed":[4]'
expect tx '"event":"disconnected"'
send tx "{\"id\":1,\"cmd\":\"submit_sm\",$SUBMIT,\"short_message_hex\":\"41\"}"
expect tx '"event":"done","id":1,"error"'
stop tx

# --- unknown command id from a raw socket gets generic_nack ESME_RINVCMDID
exec {RAW}<>"/dev/tcp/127.0.0.1/$PORT"
printf '\x00\x00\x00\x10\x00\x00\x01\x99\x00\x00\x00\x00\x00\x00\x00\x07' >&"$RAW"
expect smsc '"command":"unknown","command_id":409,"sequence_number":7'
expect smsc '"event":"sent"' '"command":"generic_nack"' '"sequence_number":7,"command_status":3'
exec {RAW}>&-
expect smsc '"event":"disconnected","session":5'

# --- invalid command_length is reported and the connection dropped
exec {RAW}<>"/dev/tcp/127.0.0.1/$PORT"
printf '\x00\x00\x00\x02\x00\x00\x00\x04' >&"$RAW"
expect smsc '"event":"error","message":"invalid command_length 2","session":6'
expect smsc '"event":"disconnected","session":6'
exec {RAW}>&-

# --- quit
send smsc '{"id":18,"cmd":"quit"}'
expect smsc '"event":"done","id":18'
stop smsc

echo "selftest: $PASS passed, 0 failed"
