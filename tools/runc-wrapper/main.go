// runc-wrapper runs runc with an OCI spec this machine can honour.
//
// Some sandboxes (this project's CI machines among them) run with a capability bounding set that lacks
// CAP_SYS_RESOURCE. There `docker run --privileged` fails ("unable to apply caps"), and inside a kind node every
// pod sandbox fails, because the kubelet asks for a negative oomScoreAdj, which needs that capability. This
// wrapper removes from the spec the capabilities the bounding set lacks, raises a negative oomScoreAdj to 0, and
// then execs the real runc with the same arguments. On a machine with the full bounding set it changes nothing.
//
// It edits `config.json` in the bundle on `create` and `run` (the bundle is --bundle/-b or the working
// directory), and the `--process` file on `exec`. Registered as Docker's default runtime on the host, and as
// containerd's runc BinaryName inside the kind node image.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// capNames maps capability numbers to the names OCI specs use (linux/capability.h).
var capNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
	"CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
	"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO",
	"CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

const realRuncEnv = "GHOSTPAY_REAL_RUNC"

func main() {
	args := os.Args[1:]
	if err := adjust(args); err != nil {
		fmt.Fprintf(os.Stderr, "runc-wrapper: %v\n", err)
		os.Exit(1)
	}
	runc := os.Getenv(realRuncEnv)
	if runc == "" {
		runc = "/usr/bin/runc"
	}
	if err := syscall.Exec(runc, append([]string{runc}, args...), os.Environ()); err != nil {
		fmt.Fprintf(os.Stderr, "runc-wrapper: exec %s: %v\n", runc, err)
		os.Exit(1)
	}
}

// adjust rewrites the spec file the command reads, if any.
func adjust(args []string) error {
	command, flags := subcommand(args)
	switch command {
	case "create", "run":
		bundle := flagValue(flags, "--bundle", "-b")
		if bundle == "" {
			bundle = "."
		}
		return rewrite(filepath.Join(bundle, "config.json"), true)
	case "exec":
		if process := flagValue(flags, "--process", "-p"); process != "" {
			return rewrite(process, false)
		}
	}
	return nil
}

// subcommand finds runc's subcommand (global flags such as --root DIR may come first) and the arguments after it.
func subcommand(args []string) (string, []string) {
	withValue := map[string]bool{"--root": true, "--log": true, "--log-format": true, "--criu": true, "--rootless": true}
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if strings.HasPrefix(arg, "-") {
			if withValue[arg] {
				i++
			}
			continue
		}
		return arg, args[i+1:]
	}
	return "", nil
}

func flagValue(args []string, names ...string) string {
	for i, arg := range args {
		for _, name := range names {
			if arg == name && i+1 < len(args) {
				return args[i+1]
			}
			if strings.HasPrefix(arg, name+"=") {
				return strings.TrimPrefix(arg, name+"=")
			}
		}
	}
	return ""
}

// rewrite edits a spec (a whole config.json, or just its process object) in place.
func rewrite(path string, wholeSpec bool) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	missing, err := missingCapabilities()
	if err != nil {
		return err
	}
	process := doc
	if wholeSpec {
		process, _ = doc["process"].(map[string]any)
	}
	changed := false
	if process != nil {
		changed = dropCapabilities(process, missing) || changed
		if score, ok := process["oomScoreAdj"].(float64); ok && score < 0 && missing["CAP_SYS_RESOURCE"] {
			process["oomScoreAdj"] = 0
			changed = true
		}
	}
	if !changed {
		return nil
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, 0o600)
}

func dropCapabilities(process map[string]any, missing map[string]bool) bool {
	caps, _ := process["capabilities"].(map[string]any)
	changed := false
	for set, value := range caps {
		list, _ := value.([]any)
		kept := make([]any, 0, len(list))
		for _, c := range list {
			if name, _ := c.(string); missing[name] {
				changed = true
				continue
			}
			kept = append(kept, c)
		}
		caps[set] = kept
	}
	return changed
}

// missingCapabilities reads this process's bounding set: what a container here can never be given.
func missingCapabilities() (map[string]bool, error) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if !strings.HasPrefix(line, "CapBnd:") {
			continue
		}
		bounding, err := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(line, "CapBnd:")), 16, 64)
		if err != nil {
			return nil, err
		}
		missing := map[string]bool{}
		for number, name := range capNames {
			if bounding&(1<<uint(number)) == 0 {
				missing[name] = true
			}
		}
		return missing, nil
	}
	return nil, fmt.Errorf("no CapBnd in /proc/self/status")
}
