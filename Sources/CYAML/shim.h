// libyaml's event parser, for the pod-manifest reader. Only Sources/IstioCapture/YAML/YAMLComposer.swift
// imports this module.
#ifndef IPTAUDIT_CYAML_SHIM_H
#define IPTAUDIT_CYAML_SHIM_H

#include <yaml.h>

#endif
