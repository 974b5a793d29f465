// oci-validate: checks OCI runtime bundles' config.json against the runtime-spec JSON
// schema (Debian's copy, read from disk: no network) and runtime-tools' rules, offline.
// Built by the tests with Debian's Go toolchain (GO111MODULE=off GOPATH=/usr/share/gocode).
//
// usage: oci-validate SCHEMA_DIR BUNDLE...   (exit 0: all valid; 1: errors, one per line)
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/hashicorp/go-multierror"
	"github.com/opencontainers/runtime-tools/validate"
	"github.com/xeipuuv/gojsonschema"
)

// schemaErrors: the bundle's config.json against config-schema.json (its $refs resolved
// from the same directory).
func schemaErrors(schemaDir, bundle string) []string {
	abs, err := filepath.Abs(filepath.Join(schemaDir, "config-schema.json"))
	if err != nil {
		return []string{err.Error()}
	}
	cfg, err := filepath.Abs(filepath.Join(bundle, "config.json"))
	if err != nil {
		return []string{err.Error()}
	}
	res, err := gojsonschema.Validate(gojsonschema.NewReferenceLoader("file://"+abs),
		gojsonschema.NewReferenceLoader("file://"+cfg))
	if err != nil {
		return []string{"schema: " + err.Error()}
	}
	var out []string
	for _, e := range res.Errors() {
		out = append(out, "schema: "+e.String())
	}
	return out
}

// ruleErrors: runtime-tools' checks but its schema one (which downloads the schema).
func ruleErrors(bundle string) []string {
	v, err := validate.NewValidatorFromPath(bundle, false, runtime.GOOS)
	if err != nil {
		return []string{"load: " + err.Error()}
	}
	checks := map[string]func() error{
		"platform": v.CheckPlatform, "root": v.CheckRoot, "mandatory": v.CheckMandatoryFields,
		"semver": v.CheckSemVer, "mounts": v.CheckMounts, "process": v.CheckProcess,
		"linux": v.CheckLinux, "annotations": v.CheckAnnotations, "hooks": v.CheckHooks,
	}
	var out []string
	for name, check := range checks {
		err := check()
		if me, ok := err.(*multierror.Error); ok {
			if me == nil {
				continue
			}
			for _, e := range me.Errors {
				out = append(out, name+": "+e.Error())
			}
		} else if err != nil {
			out = append(out, name+": "+err.Error())
		}
	}
	return out
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: oci-validate SCHEMA_DIR BUNDLE...")
		os.Exit(2)
	}
	bad := false
	for _, bundle := range os.Args[2:] {
		errs := append(schemaErrors(os.Args[1], bundle), ruleErrors(bundle)...)
		for _, e := range errs {
			fmt.Printf("%s: %s\n", bundle, e)
			bad = true
		}
	}
	if bad {
		os.Exit(1)
	}
}
