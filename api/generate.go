// Package api holds the HTTP server interface and models generated from openapi.yaml.
// Nothing here is edited by hand: run `make generate` after changing the spec.
package api

//go:generate go tool oapi-codegen -config cfg.yaml ../openapi.yaml
