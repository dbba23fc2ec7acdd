// The netlink socket calls and rtnetlink / nfnetlink declarations iptaudit's netlink reads need, in one header.
// Only Sources/RuleReaders/Netlink/NetlinkSocket.swift imports this module.
//
// No library: the socket is glibc's socket(2), and the few libmnl helpers the reader used are mirrored below
// (same checks, `cnetlink_` prefix), so the binary needs nothing but glibc, and `observe` (which reads the pod's
// addresses over NETLINK_ROUTE) runs in an image without libmnl.
#ifndef IPTAUDIT_CNETLINK_SHIM_H
#define IPTAUDIT_CNETLINK_SHIM_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
// glibc's in.h first, so linux/libc-compat.h leaves struct in_addr and friends to it.
#include <netinet/in.h>
#include <net/if.h>
#include <string.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/fib_rules.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>

/// A close-on-exec NETLINK socket of `protocol` (libmnl's `mnl_socket_open2(protocol, SOCK_CLOEXEC)`); -1 with errno.
static inline int cnetlink_socket(int protocol) {
    return socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
}

/// Binds with a port id the kernel picks and reads it back (`mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID)`); -1 with errno.
static inline int cnetlink_bind(int fd, unsigned int *portid) {
    struct sockaddr_nl addr;
    memset(&addr, 0, sizeof(addr));
    addr.nl_family = AF_NETLINK;
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) return -1;
    socklen_t len = sizeof(addr);
    if (getsockname(fd, (struct sockaddr *)&addr, &len) < 0) return -1;
    if (len != sizeof(addr) || addr.nl_family != AF_NETLINK) { errno = EINVAL; return -1; }
    *portid = addr.nl_pid;
    return 0;
}

/// Sends to the kernel (`mnl_socket_sendto`).
static inline ssize_t cnetlink_sendto(int fd, const void *buf, size_t len) {
    struct sockaddr_nl kernel;
    memset(&kernel, 0, sizeof(kernel));
    kernel.nl_family = AF_NETLINK;
    return sendto(fd, buf, len, 0, (const struct sockaddr *)&kernel, sizeof(kernel));
}

/// One datagram (`mnl_socket_recvfrom`): -1 with ENOSPC when it did not fit in `len` bytes.
static inline ssize_t cnetlink_recvfrom(int fd, void *buf, size_t len) {
    struct sockaddr_nl from;
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_name = &from;
    msg.msg_namelen = sizeof(from);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    ssize_t ret = recvmsg(fd, &msg, 0);
    if (ret < 0) return ret;
    if (msg.msg_flags & MSG_TRUNC) { errno = ENOSPC; return -1; }
    if (msg.msg_namelen != sizeof(from)) { errno = EINVAL; return -1; }
    return ret;
}

/// libmnl's message and attribute walkers, with its bounds checks (`mnl_nlmsg_*`, `mnl_attr_*`).
static inline struct nlmsghdr *cnetlink_nlmsg_put_header(void *buf) {
    memset(buf, 0, NLMSG_HDRLEN);
    struct nlmsghdr *nlh = (struct nlmsghdr *)buf;
    nlh->nlmsg_len = NLMSG_HDRLEN;
    return nlh;
}
static inline void *cnetlink_nlmsg_put_extra_header(struct nlmsghdr *nlh, size_t size) {
    char *ptr = (char *)nlh + nlh->nlmsg_len;
    nlh->nlmsg_len += NLMSG_ALIGN(size);
    memset(ptr, 0, size);
    return ptr;
}
static inline bool cnetlink_nlmsg_ok(const struct nlmsghdr *nlh, int len) {
    return len >= (int)sizeof(struct nlmsghdr) && nlh->nlmsg_len >= sizeof(struct nlmsghdr) && (int)nlh->nlmsg_len <= len;
}
static inline struct nlmsghdr *cnetlink_nlmsg_next(const struct nlmsghdr *nlh, int *len) {
    *len -= NLMSG_ALIGN(nlh->nlmsg_len);
    return (struct nlmsghdr *)((char *)nlh + NLMSG_ALIGN(nlh->nlmsg_len));
}
static inline void *cnetlink_nlmsg_get_payload(const struct nlmsghdr *nlh) { return (char *)nlh + NLMSG_HDRLEN; }
static inline size_t cnetlink_nlmsg_get_payload_len(const struct nlmsghdr *nlh) { return nlh->nlmsg_len - NLMSG_HDRLEN; }
static inline void *cnetlink_nlmsg_get_payload_offset(const struct nlmsghdr *nlh, size_t offset) {
    return (char *)nlh + NLMSG_HDRLEN + NLMSG_ALIGN(offset);
}
static inline void *cnetlink_nlmsg_get_payload_tail(const struct nlmsghdr *nlh) { return (char *)nlh + NLMSG_ALIGN(nlh->nlmsg_len); }
static inline bool cnetlink_attr_ok(const struct nlattr *attr, int len) {
    return len >= (int)sizeof(struct nlattr) && attr->nla_len >= sizeof(struct nlattr) && (int)attr->nla_len <= len;
}
static inline struct nlattr *cnetlink_attr_next(const struct nlattr *attr) { return (struct nlattr *)((char *)attr + NLA_ALIGN(attr->nla_len)); }
static inline uint16_t cnetlink_attr_get_type(const struct nlattr *attr) { return attr->nla_type & NLA_TYPE_MASK; }
static inline uint16_t cnetlink_attr_get_payload_len(const struct nlattr *attr) { return attr->nla_len - NLA_HDRLEN; }
static inline void *cnetlink_attr_get_payload(const struct nlattr *attr) { return (char *)attr + NLA_HDRLEN; }

/// Netlink flag and type macros Swift imports only as Int32, or not at all.
static inline unsigned short cnetlink_f_request(void) { return NLM_F_REQUEST; }
static inline unsigned short cnetlink_f_dump(void) { return NLM_F_DUMP; }
static inline unsigned short cnetlink_f_multi(void) { return NLM_F_MULTI; }
static inline unsigned short cnetlink_f_dump_intr(void) { return NLM_F_DUMP_INTR; }
static inline unsigned short cnetlink_msg_error(void) { return NLMSG_ERROR; }
static inline unsigned short cnetlink_msg_done(void) { return NLMSG_DONE; }
static inline unsigned short cnetlink_msg_noop(void) { return NLMSG_NOOP; }
static inline unsigned short cnetlink_msg_overrun(void) { return NLMSG_OVERRUN; }

/// `(NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_*`: nfnetlink message types carry the subsystem in the high byte.
static inline unsigned short cnetlink_nft_msg_type(unsigned short msg) { return (unsigned short)((NFNL_SUBSYS_NFTABLES << 8) | msg); }

/// Payload length of an `NLMSG_ERROR` message: `struct nlmsgerr`.
static inline unsigned int cnetlink_nlmsgerr_size(void) { return (unsigned int)sizeof(struct nlmsgerr); }

_Static_assert(sizeof(struct rtmsg) == 12, "struct rtmsg is 12 bytes");
_Static_assert(sizeof(struct fib_rule_hdr) == 12, "struct fib_rule_hdr is 12 bytes");
_Static_assert(sizeof(struct ifaddrmsg) == 8, "struct ifaddrmsg is 8 bytes");
_Static_assert(sizeof(struct ifinfomsg) == 16, "struct ifinfomsg is 16 bytes");
_Static_assert(sizeof(struct nfgenmsg) == 4, "struct nfgenmsg is 4 bytes");

#endif
