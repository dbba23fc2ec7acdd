// The libiptc and x_tables declarations iptaudit's legacy reader needs, in one header.
// Only Sources/RuleReaders/LegacyTableReader.swift imports this module.
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

/// Offset of the first match inside an entry (the kernel's flexible `elems[]`), which Swift cannot name.
static inline unsigned int iptaudit_ipt_entry_elems_offset(void) { return (unsigned int)sizeof(struct ipt_entry); }
static inline unsigned int iptaudit_ip6t_entry_elems_offset(void) { return (unsigned int)sizeof(struct ip6t_entry); }

_Static_assert(sizeof(struct xt_entry_match) == 32, "xt_entry_match header is 32 bytes on Linux");
_Static_assert(sizeof(struct xt_entry_target) == 32, "xt_entry_target header is 32 bytes on Linux");

#endif
