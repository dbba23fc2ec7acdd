// libnftables' high-level API (the library behind `nft`), for reading native nf_tables rulesets as JSON.
// Only Sources/RuleReaders/Nftables/NftablesContext.swift imports this module.
#ifndef IPTAUDIT_CNFTABLES_SHIM_H
#define IPTAUDIT_CNFTABLES_SHIM_H

#include <nftables/libnftables.h>

#endif
