// libyaml's event parser (the pod-manifest reader) and emitter (`-o yaml`). Only
// Sources/IstioCapture/YAML/YAMLComposer.swift imports this module.
//
// Not linked: the composer loads libyaml-0.so.2 with dlopen on the first manifest it parses, so a binary copied
// into an image without libyaml (the istio-proxy container, for `observe`) still starts. The typedefs give each
// entry point the header's own signature, so a dlsym'd pointer cannot drift from the library.
#ifndef IPTAUDIT_CYAML_SHIM_H
#define IPTAUDIT_CYAML_SHIM_H

#include <yaml.h>

#define IPTAUDIT_YAML_SONAME "libyaml-0.so.2"

typedef __typeof__(yaml_parser_initialize) *iptaudit_yaml_parser_initialize_fn;
typedef __typeof__(yaml_parser_delete) *iptaudit_yaml_parser_delete_fn;
typedef __typeof__(yaml_parser_set_input_string) *iptaudit_yaml_parser_set_input_string_fn;
typedef __typeof__(yaml_parser_parse) *iptaudit_yaml_parser_parse_fn;
typedef __typeof__(yaml_event_delete) *iptaudit_yaml_event_delete_fn;
typedef __typeof__(yaml_emitter_initialize) *iptaudit_yaml_emitter_initialize_fn;
typedef __typeof__(yaml_emitter_delete) *iptaudit_yaml_emitter_delete_fn;
typedef __typeof__(yaml_emitter_set_output) *iptaudit_yaml_emitter_set_output_fn;
typedef __typeof__(yaml_emitter_set_width) *iptaudit_yaml_emitter_set_width_fn;
typedef __typeof__(yaml_emitter_set_unicode) *iptaudit_yaml_emitter_set_unicode_fn;
typedef __typeof__(yaml_emitter_emit) *iptaudit_yaml_emitter_emit_fn;
typedef __typeof__(yaml_stream_start_event_initialize) *iptaudit_yaml_stream_start_event_initialize_fn;
typedef __typeof__(yaml_stream_end_event_initialize) *iptaudit_yaml_stream_end_event_initialize_fn;
typedef __typeof__(yaml_document_start_event_initialize) *iptaudit_yaml_document_start_event_initialize_fn;
typedef __typeof__(yaml_document_end_event_initialize) *iptaudit_yaml_document_end_event_initialize_fn;
typedef __typeof__(yaml_scalar_event_initialize) *iptaudit_yaml_scalar_event_initialize_fn;
typedef __typeof__(yaml_sequence_start_event_initialize) *iptaudit_yaml_sequence_start_event_initialize_fn;
typedef __typeof__(yaml_sequence_end_event_initialize) *iptaudit_yaml_sequence_end_event_initialize_fn;
typedef __typeof__(yaml_mapping_start_event_initialize) *iptaudit_yaml_mapping_start_event_initialize_fn;
typedef __typeof__(yaml_mapping_end_event_initialize) *iptaudit_yaml_mapping_end_event_initialize_fn;

#endif
