# Shared by the lab scripts (sourced, not run): the packages they need, and the two network
# namespaces they measure or record between.

# lab_install CMD...: installs the Debian packages of the commands that are missing (`ip` comes
# with iproute2, /usr/bin/time with time).
lab_install() {
  local need=() pk=() c
  for c in "$@"; do
    case $c in
      /*) [[ -x $c ]] || need+=("$c") ;;
      *) command -v "$c" >/dev/null || need+=("$c") ;;
    esac
  done
  ((${#need[@]})) || return 0
  for c in "${need[@]}"; do
    case $c in ip) pk+=(iproute2) ;; /usr/bin/time) pk+=(time) ;; *) pk+=("$c") ;; esac
  done
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pk[@]}" >/dev/null
}

# lab_pair CLIENT SERVER PREFIX: two namespaces joined by a veth (eth0 in each), PREFIX.1/24 in
# the client and PREFIX.2/24 in the server; addresses that exist only inside them.
lab_pair() {
  local c=$1 s=$2 p=$3
  ip netns add "$c"; ip netns add "$s"
  ip -n "$c" link set lo up; ip -n "$s" link set lo up
  ip -n "$c" link add eth0 type veth peer name eth0 netns "$s"
  ip -n "$c" addr add "$p.1/24" dev eth0; ip -n "$s" addr add "$p.2/24" dev eth0
  ip -n "$c" link set eth0 up; ip -n "$s" link set eth0 up
}
