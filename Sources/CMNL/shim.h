// libmnl and the rtnetlink / nfnetlink declarations iptaudit's netlink reads need, in one header.
// Only Sources/RuleReaders/Netlink/NetlinkSocket.swift imports this module.
#ifndef IPTAUDIT_CMNL_SHIM_H
#define IPTAUDIT_CMNL_SHIM_H

#include <errno.h>
#include <sys/socket.h>
// glibc's in.h first, so linux/libc-compat.h leaves struct in_addr and friends to it.
#include <netinet/in.h>
#include <net/if.h>
#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/fib_rules.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>

/// `MNL_SOCKET_AUTOPID` and `MNL_SOCKET_BUFFER_SIZE` are macros (libmnl 1.0.4 has no `MNL_SOCKET_DUMP_SIZE`).
static inline unsigned int cmnl_socket_autopid(void) { return MNL_SOCKET_AUTOPID; }
static inline unsigned long cmnl_socket_buffer_size(void) { return MNL_SOCKET_BUFFER_SIZE; }
/// glibc's `SOCK_CLOEXEC` is an enumerator shadowed by a macro of the same name, which Swift does not import.
static inline int cmnl_sock_cloexec(void) { return SOCK_CLOEXEC; }

/// Netlink flag and type macros Swift imports only as Int32, or not at all.
static inline unsigned short cmnl_f_request(void) { return NLM_F_REQUEST; }
static inline unsigned short cmnl_f_dump(void) { return NLM_F_DUMP; }
static inline unsigned short cmnl_f_multi(void) { return NLM_F_MULTI; }
static inline unsigned short cmnl_f_dump_intr(void) { return NLM_F_DUMP_INTR; }
static inline unsigned short cmnl_msg_error(void) { return NLMSG_ERROR; }
static inline unsigned short cmnl_msg_done(void) { return NLMSG_DONE; }
static inline unsigned short cmnl_msg_noop(void) { return NLMSG_NOOP; }
static inline unsigned short cmnl_msg_overrun(void) { return NLMSG_OVERRUN; }

/// `(NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_*`: nfnetlink message types carry the subsystem in the high byte.
static inline unsigned short cmnl_nft_msg_type(unsigned short msg) { return (unsigned short)((NFNL_SUBSYS_NFTABLES << 8) | msg); }

/// Payload length of an `NLMSG_ERROR` message: `struct nlmsgerr`.
static inline unsigned int cmnl_nlmsgerr_size(void) { return (unsigned int)sizeof(struct nlmsgerr); }

_Static_assert(sizeof(struct rtmsg) == 12, "struct rtmsg is 12 bytes");
_Static_assert(sizeof(struct fib_rule_hdr) == 12, "struct fib_rule_hdr is 12 bytes");
_Static_assert(sizeof(struct ifaddrmsg) == 8, "struct ifaddrmsg is 8 bytes");
_Static_assert(sizeof(struct ifinfomsg) == 16, "struct ifinfomsg is 16 bytes");
_Static_assert(sizeof(struct nfgenmsg) == 4, "struct nfgenmsg is 4 bytes");

#endif
