// The libiptc and x_tables declarations iptaudit's legacy reader needs, in one header.
// Only the two files of Sources/RuleReaders/Legacy/ import this module.
//
// Not linked: the reader loads libip4tc.so.2 / libip6tc.so.2 with dlopen the first time it reads a family's legacy
// tables, so a binary copied into an image without libiptc (the istio-proxy container, for `observe`) still starts.
// The typedefs give each entry point the header's own signature, so a dlsym'd pointer cannot drift from the library.
#ifndef IPTAUDIT_CIPTC_SHIM_H
#define IPTAUDIT_CIPTC_SHIM_H

#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <libiptc/libiptc.h>
#include <libiptc/libip6tc.h>
#include <linux/netfilter/x_tables.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/xt_tcpudp.h>
#include <linux/netfilter/xt_multiport.h>
#include <linux/netfilter/xt_owner.h>
#include <linux/netfilter/xt_mark.h>
#include <linux/netfilter/xt_connmark.h>
#include <linux/netfilter/xt_conntrack.h>
#include <linux/netfilter/xt_state.h>
#include <linux/netfilter/xt_comment.h>
#include <linux/netfilter/xt_addrtype.h>
#include <linux/netfilter/xt_statistic.h>
#include <linux/netfilter/xt_set.h>
#include <linux/netfilter/xt_socket.h>
#include <linux/netfilter/xt_mac.h>
#include <linux/netfilter/xt_TPROXY.h>
#include <linux/netfilter/xt_CT.h>
#include <linux/netfilter/xt_LOG.h>
#include <linux/netfilter/xt_NFLOG.h>
#include <linux/netfilter/ipset/ip_set.h>
#include <linux/netfilter_ipv4/ipt_REJECT.h>
#include <linux/netfilter_ipv6/ip6t_REJECT.h>

#define IPTAUDIT_IP4TC_SONAME "libip4tc.so.2"
#define IPTAUDIT_IP6TC_SONAME "libip6tc.so.2"

typedef __typeof__(iptc_init) *iptaudit_iptc_init_fn;
typedef __typeof__(iptc_free) *iptaudit_iptc_free_fn;
typedef __typeof__(iptc_strerror) *iptaudit_iptc_strerror_fn;
typedef __typeof__(iptc_first_chain) *iptaudit_iptc_first_chain_fn;
typedef __typeof__(iptc_next_chain) *iptaudit_iptc_next_chain_fn;
typedef __typeof__(iptc_builtin) *iptaudit_iptc_builtin_fn;
typedef __typeof__(iptc_get_policy) *iptaudit_iptc_get_policy_fn;
typedef __typeof__(iptc_first_rule) *iptaudit_iptc_first_rule_fn;
typedef __typeof__(iptc_next_rule) *iptaudit_iptc_next_rule_fn;
typedef __typeof__(iptc_get_target) *iptaudit_iptc_get_target_fn;

typedef __typeof__(ip6tc_init) *iptaudit_ip6tc_init_fn;
typedef __typeof__(ip6tc_free) *iptaudit_ip6tc_free_fn;
typedef __typeof__(ip6tc_strerror) *iptaudit_ip6tc_strerror_fn;
typedef __typeof__(ip6tc_first_chain) *iptaudit_ip6tc_first_chain_fn;
typedef __typeof__(ip6tc_next_chain) *iptaudit_ip6tc_next_chain_fn;
typedef __typeof__(ip6tc_builtin) *iptaudit_ip6tc_builtin_fn;
typedef __typeof__(ip6tc_get_policy) *iptaudit_ip6tc_get_policy_fn;
typedef __typeof__(ip6tc_first_rule) *iptaudit_ip6tc_first_rule_fn;
typedef __typeof__(ip6tc_next_rule) *iptaudit_ip6tc_next_rule_fn;
typedef __typeof__(ip6tc_get_target) *iptaudit_ip6tc_get_target_fn;

/// Offset of the first match inside an entry (the kernel's flexible `elems[]`), which Swift cannot name.
static inline unsigned int iptaudit_ipt_entry_elems_offset(void) { return (unsigned int)sizeof(struct ipt_entry); }
static inline unsigned int iptaudit_ip6t_entry_elems_offset(void) { return (unsigned int)sizeof(struct ip6t_entry); }

_Static_assert(sizeof(struct xt_entry_match) == 32, "xt_entry_match header is 32 bytes on Linux");
_Static_assert(sizeof(struct xt_entry_target) == 32, "xt_entry_target header is 32 bytes on Linux");

#endif
