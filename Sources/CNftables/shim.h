// libnftables' high-level API (the library behind `nft`), for reading native nf_tables rulesets as JSON.
// Only Sources/RuleReaders/Nftables/NftablesContext.swift imports this module.
//
// Not linked: the reader loads libnftables.so.1 with dlopen only when nf_tables holds native tables, so a
// legacy-only read never maps it (nor libnftnl, libxtables, libjansson and libgmp behind it). The typedefs
// give each entry point the header's own signature, so a dlsym'd pointer cannot drift from the library.
#ifndef IPTAUDIT_CNFTABLES_SHIM_H
#define IPTAUDIT_CNFTABLES_SHIM_H

#include <nftables/libnftables.h>

#define IPTAUDIT_NFTABLES_SONAME "libnftables.so.1"

typedef __typeof__(nft_ctx_new) *iptaudit_nft_ctx_new_fn;
typedef __typeof__(nft_ctx_free) *iptaudit_nft_ctx_free_fn;
typedef __typeof__(nft_ctx_buffer_output) *iptaudit_nft_ctx_buffer_output_fn;
typedef __typeof__(nft_ctx_buffer_error) *iptaudit_nft_ctx_buffer_error_fn;
typedef __typeof__(nft_ctx_output_set_flags) *iptaudit_nft_ctx_output_set_flags_fn;
typedef __typeof__(nft_run_cmd_from_buffer) *iptaudit_nft_run_cmd_from_buffer_fn;
typedef __typeof__(nft_ctx_get_output_buffer) *iptaudit_nft_ctx_get_output_buffer_fn;
typedef __typeof__(nft_ctx_get_error_buffer) *iptaudit_nft_ctx_get_error_buffer_fn;

#endif
