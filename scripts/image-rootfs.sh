#!/usr/bin/env bash
# The image's whole filesystem, from this Debian system's own files: the release binary as /usr/bin/iptaudit, the
# libraries it dlopens (libip4tc/libip6tc for legacy x_tables, libnftables for native nf_tables, libyaml for --pod)
# and iptables-nft-save (which it runs for iptables-nft rules) with the xtables extensions that program dlopens, and
# the closure of all of them by ldd (glibc's loader, libc, libm; libxtables, libnftnl, libmnl, libjansson, libgmp).
# Nothing else: no shell, no package manager. Usage: image-rootfs.sh BINARY DIR (DIR must not exist).
set -euo pipefail
[[ $# -eq 2 ]] || { echo "usage: $0 BINARY DIR" >&2; exit 64; }
binary="$1" root="$2"
[[ -x "$binary" ]] || { echo "image-rootfs: $binary is not an executable" >&2; exit 66; }
[[ ! -e "$root" ]] || { echo "image-rootfs: $root exists" >&2; exit 73; }
multiarch="$(gcc -print-multiarch 2>/dev/null || echo "$(uname -m)-linux-gnu")"
libdir="/usr/lib/$multiarch"

soname() {  # the file the loader would map for a soname
  local path
  path="$(ldconfig -p | awk -v l="$1" '$1 == l { print $NF; exit }')"
  [[ -n "$path" ]] || { echo "image-rootfs: $1 is not installed (scripts/install-deps.sh installs it)" >&2; exit 69; }
  echo "$path"
}

# Debian's merged /usr: /lib, /lib64, /bin and /sbin are links into /usr, as on the host, so ldd's paths hold.
mkdir -p "$root"/usr/{bin,sbin,lib,lib64} "$root"/etc "$root"/tmp "$root"/proc "$root"/sys "$root"/dev
chmod 1777 "$root/tmp"
for d in bin sbin lib lib64; do ln -s "usr/$d" "$root/$d"; done

place() {  # copies $1's content to the same path under the root, with its directories resolved (merged /usr)
  local source="$1" dest
  dest="$(readlink -f "$(dirname "$source")")/$(basename "$source")"
  [[ -e "$root$dest" ]] && return 0
  mkdir -p "$root$(dirname "$dest")"
  cp --dereference --preserve=mode "$source" "$root$dest"
}

install -m 0755 "$binary" "$root/usr/bin/iptaudit"
place /usr/sbin/xtables-nft-multi
ln -s xtables-nft-multi "$root/usr/sbin/iptables-nft-save"
ln -s xtables-nft-multi "$root/usr/sbin/ip6tables-nft-save"

objects=("$binary" /usr/sbin/xtables-nft-multi)
for name in libip4tc.so.2 libip6tc.so.2 libnftables.so.1 libyaml-0.so.2; do
  objects+=("$(soname "$name")")
done
objects+=("$libdir"/xtables/*.so)
for object in "${objects[@]}"; do
  [[ "$object" == "$binary" ]] || place "$object"
  # `libfoo.so.1 => /path/libfoo.so.1 (0x…)` and `/lib64/ld-linux-x86-64.so.2 (0x…)`; linux-vdso has no path.
  while read -r library; do
    place "$library"
  done < <(ldd "$object" | grep -o '/[^ ]*' )
done

# Names for the two users the image is run as, and the protocol names iptables-nft-save may print.
printf 'root:x:0:0:root:/:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/:/usr/sbin/nologin\n' > "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
[[ -f /etc/protocols ]] && cp /etc/protocols "$root/etc/protocols"
echo "$root"
