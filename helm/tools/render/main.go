// Command render renders a Helm chart the way `helm template` does, with
// the engine helm itself uses: Go's text/template, the sprig function
// library, and helm's own additions (include, tpl, required, toYaml,
// fromYaml, toJson, fromJson, lookup; .Values, .Release, .Chart,
// .Capabilities, .Template, .Files.Get; _*.tpl partials; NOTES.txt). No helm binary can
// be installed here; this is the faithful substitute for the tests.
//
// Usage:
//
//	render [-f values.yaml]... [-release NAME] [-namespace NS]
//	       [-kube-version 1.30] [-api-versions a/v1,b/v1] [-notes] CHART_DIR
//
// Prints the manifests, each as "---\n# Source: CHART/templates/FILE\n...",
// sorted by kind in helm's install order (stable), or with -notes the
// rendered NOTES.txt. Values files are merged over the chart's values.yaml
// as helm merges them (maps deeply, a null removes a key).
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"github.com/ghodss/yaml"
)

type valueFiles []string

func (v *valueFiles) String() string     { return strings.Join(*v, ",") }
func (v *valueFiles) Set(s string) error { *v = append(*v, s); return nil }

// VersionSet is .Capabilities.APIVersions.
type VersionSet []string

// Has reports whether the cluster serves this API version (or version/kind).
func (v VersionSet) Has(apiVersion string) bool {
	for _, x := range v {
		if x == apiVersion {
			return true
		}
	}
	return false
}

// KubeVersion is .Capabilities.KubeVersion.
type KubeVersion struct {
	Version    string
	Major      string
	Minor      string
	GitVersion string
}

func (k KubeVersion) String() string { return k.Version }

// Capabilities is .Capabilities.
type Capabilities struct {
	KubeVersion KubeVersion
	APIVersions VersionSet
	HelmVersion map[string]string
}

// helm's install order (pkg/releaseutil/kind_sorter.go).
var installOrder = []string{
	"PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange",
	"PodSecurityPolicy", "PodDisruptionBudget", "ServiceAccount", "Secret",
	"SecretList", "ConfigMap", "StorageClass", "PersistentVolume",
	"PersistentVolumeClaim", "CustomResourceDefinition", "ClusterRole",
	"ClusterRoleList", "ClusterRoleBinding", "ClusterRoleBindingList", "Role",
	"RoleList", "RoleBinding", "RoleBindingList", "Service", "DaemonSet", "Pod",
	"ReplicationController", "ReplicaSet", "Deployment",
	"HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass",
	"Ingress", "APIService",
}

func main() {
	var files valueFiles
	flag.Var(&files, "f", "a values file merged over the chart's values.yaml (repeatable)")
	release := flag.String("release", "release-name", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	kube := flag.String("kube-version", "1.30", "Kubernetes version MAJOR.MINOR for .Capabilities")
	apis := flag.String("api-versions", "", "extra API versions for .Capabilities.APIVersions, comma-separated")
	notes := flag.Bool("notes", false, "print the rendered NOTES.txt instead of the manifests")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: render [-f values.yaml]... [-release NAME] [-notes] CHART_DIR")
		os.Exit(64)
	}
	out, err := render(flag.Arg(0), files, *release, *namespace, *kube, *apis, *notes)
	if err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
	fmt.Print(out)
}

func readYAML(path string) (map[string]interface{}, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := map[string]interface{}{}
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// merge merges src over dst as helm merges values files.
func merge(dst, src map[string]interface{}) map[string]interface{} {
	for k, v := range src {
		if v == nil {
			delete(dst, k)
			continue
		}
		sm, sok := v.(map[string]interface{})
		dm, dok := dst[k].(map[string]interface{})
		if sok && dok {
			dst[k] = merge(dm, sm)
		} else {
			dst[k] = v
		}
	}
	return dst
}

// chartDir is one chart of the tree: the chart itself or a subchart under
// charts/ (a dependency), with its values as helm coalesces them.
type chartDir struct {
	dir    string
	path   string // template path prefix, e.g. "app/charts/s3-elector"
	meta   map[string]interface{}
	values map[string]interface{}
	subs   []*chartDir
}

// loadChart reads dir and its subcharts. values are the values given for
// this chart (the parent's values under the subchart's name); the chart's
// own values.yaml fills in what they lack, and each subchart's values are
// written back under its name, as helm's CoalesceValues does, so a parent
// template sees a subchart's defaults in .Values.<name>.
func loadChart(dir, parentPath string, given map[string]interface{}) (*chartDir, error) {
	meta, err := readYAML(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return nil, err
	}
	defaults, err := readYAML(filepath.Join(dir, "values.yaml"))
	if err != nil {
		return nil, err
	}
	name, _ := meta["name"].(string)
	path := name
	if parentPath != "" {
		path = parentPath + "/charts/" + name
	}
	values := merge(defaults, given)
	c := &chartDir{dir: dir, path: path, meta: meta, values: values}
	entries, err := os.ReadDir(filepath.Join(dir, "charts"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, e := range entries {
		subDir := filepath.Join(dir, "charts", e.Name())
		if st, err := os.Stat(subDir); err != nil || !st.IsDir() {
			continue
		}
		subMeta, err := readYAML(filepath.Join(subDir, "Chart.yaml"))
		if err != nil {
			return nil, err
		}
		subName, _ := subMeta["name"].(string)
		subGiven, _ := values[subName].(map[string]interface{})
		if subGiven == nil {
			subGiven = map[string]interface{}{}
		}
		if g, ok := values["global"]; ok {
			subGiven["global"] = g
		}
		sub, err := loadChart(subDir, path, subGiven)
		if err != nil {
			return nil, err
		}
		values[subName] = sub.values
		c.subs = append(c.subs, sub)
	}
	return c, nil
}

// Files is .Files: the chart's own files outside templates/, as helm's
// (only Get is implemented; a missing file gives "", as in helm).
type Files struct {
	dir string
}

// Get returns the file's contents, or "" when it cannot be read.
func (f Files) Get(name string) string {
	clean := filepath.Clean(name)
	if filepath.IsAbs(clean) || strings.HasPrefix(clean, "..") || strings.HasPrefix(clean, "templates"+string(filepath.Separator)) {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(f.dir, clean))
	if err != nil {
		return ""
	}
	return string(b)
}

// each visits the chart and its subcharts, parents first.
func (c *chartDir) each(f func(*chartDir) error) error {
	if err := f(c); err != nil {
		return err
	}
	for _, s := range c.subs {
		if err := s.each(f); err != nil {
			return err
		}
	}
	return nil
}

func render(dir string, files []string, release, namespace, kube, apis string, notesOnly bool) (string, error) {
	given := map[string]interface{}{}
	for _, f := range files {
		v, err := readYAML(f)
		if err != nil {
			return "", err
		}
		given = merge(given, v)
	}
	root, err := loadChart(dir, "", given)
	if err != nil {
		return "", err
	}
	parts := strings.SplitN(kube, ".", 2)
	if len(parts) != 2 {
		return "", fmt.Errorf("-kube-version %q: want MAJOR.MINOR", kube)
	}
	versions := VersionSet{"v1", "apps/v1", "policy/v1", "networking.k8s.io/v1", "rbac.authorization.k8s.io/v1"}
	if apis != "" {
		versions = append(versions, strings.Split(apis, ",")...)
	}
	caps := Capabilities{
		KubeVersion: KubeVersion{
			Version:    "v" + kube + ".0",
			Major:      parts[0],
			Minor:      parts[1],
			GitVersion: "v" + kube + ".0",
		},
		APIVersions: versions,
		HelmVersion: map[string]string{"Version": "v3.16.0"},
	}
	releaseObj := map[string]interface{}{
		"Name": release, "Namespace": namespace, "Service": "Helm",
		"IsInstall": true, "IsUpgrade": false, "Revision": 1,
	}
	// Each chart's root context; a parent's .Subcharts holds its
	// subcharts' (helm 3.7+), so it can include their named templates in
	// their own scope.
	var contextOf func(c *chartDir) map[string]interface{}
	contextOf = func(c *chartDir) map[string]interface{} {
		chart := map[string]interface{}{}
		for k, v := range c.meta {
			// .Chart fields are capitalised, as helm's chart.Metadata.
			chart[strings.ToUpper(k[:1])+k[1:]] = v
		}
		subs := map[string]interface{}{}
		for _, s := range c.subs {
			name, _ := s.meta["name"].(string)
			subs[name] = contextOf(s)
		}
		return map[string]interface{}{
			"Values":       c.values,
			"Release":      releaseObj,
			"Chart":        chart,
			"Capabilities": caps,
			"Files":        Files{dir: c.dir},
			"Subcharts":    subs,
		}
	}

	t := template.New("gotpl").Option("missingkey=zero")
	funcs := sprig.TxtFuncMap()
	// helm removes these: a chart must not read the renderer's environment.
	delete(funcs, "env")
	delete(funcs, "expandenv")
	included := map[string]int{}
	funcs["include"] = func(name string, data interface{}) (string, error) {
		if included[name] > 1000 {
			return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
		}
		included[name]++
		defer func() { included[name]-- }()
		var buf strings.Builder
		err := t.ExecuteTemplate(&buf, name, data)
		return buf.String(), err
	}
	funcs["tpl"] = func(text string, vals interface{}) (string, error) {
		c, err := t.Clone()
		if err != nil {
			return "", err
		}
		c, err = c.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf strings.Builder
		err = c.Execute(&buf, vals)
		return strings.ReplaceAll(buf.String(), "<no value>", ""), err
	}
	funcs["required"] = func(msg string, val interface{}) (interface{}, error) {
		if val == nil {
			return val, errors.New(msg)
		}
		if s, ok := val.(string); ok && s == "" {
			return val, errors.New(msg)
		}
		return val, nil
	}
	funcs["toYaml"] = func(v interface{}) string {
		b, err := yaml.Marshal(v)
		if err != nil {
			return ""
		}
		return strings.TrimSuffix(string(b), "\n")
	}
	funcs["fromYaml"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	funcs["toJson"] = func(v interface{}) string {
		b, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		return string(b)
	}
	funcs["fromJson"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	funcs["lookup"] = func(apiVersion, kind, namespace, name string) (map[string]interface{}, error) {
		// As in `helm template`: no cluster to ask.
		return map[string]interface{}{}, nil
	}
	t.Funcs(funcs)

	// Every chart's templates in one set: named templates are global, as
	// in helm.
	var names []string
	top := map[string]map[string]interface{}{}
	err = root.each(func(c *chartDir) error {
		entries, err := os.ReadDir(filepath.Join(c.dir, "templates"))
		if err != nil {
			return err
		}
		ctx := contextOf(c)
		for _, e := range entries {
			if e.IsDir() {
				continue
			}
			b, err := os.ReadFile(filepath.Join(c.dir, "templates", e.Name()))
			if err != nil {
				return err
			}
			n := c.path + "/templates/" + e.Name()
			if _, err := t.New(n).Parse(string(b)); err != nil {
				return err
			}
			names = append(names, n)
			top[n] = ctx
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Strings(names)
	rootName, _ := root.meta["name"].(string)

	type manifest struct {
		source, body, kind string
	}
	var manifests []manifest
	for _, n := range names {
		base := filepath.Base(n)
		if strings.HasPrefix(base, "_") {
			continue
		}
		if (base == "NOTES.txt") != notesOnly {
			continue
		}
		// helm prints only the top chart's NOTES.txt.
		if notesOnly && !strings.HasPrefix(n, rootName+"/templates/") {
			continue
		}
		data := map[string]interface{}{}
		for k, v := range top[n] {
			data[k] = v
		}
		data["Template"] = map[string]interface{}{"Name": n, "BasePath": filepath.Dir(n)}
		var buf bytes.Buffer
		if err := t.ExecuteTemplate(&buf, n, data); err != nil {
			return "", err
		}
		out := strings.ReplaceAll(buf.String(), "<no value>", "")
		if notesOnly {
			return out, nil
		}
		for _, doc := range strings.Split("\n"+out, "\n---") {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			head := struct {
				Kind string `json:"kind"`
			}{}
			if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
				return "", fmt.Errorf("%s: the rendered YAML does not parse: %w\n%s", n, err, doc)
			}
			manifests = append(manifests, manifest{n, strings.Trim(doc, "\n"), head.Kind})
		}
	}
	if notesOnly {
		return "", errors.New("the chart has no templates/NOTES.txt")
	}
	rank := func(kind string) int {
		for i, k := range installOrder {
			if k == kind {
				return i
			}
		}
		return len(installOrder)
	}
	sort.SliceStable(manifests, func(i, j int) bool { return rank(manifests[i].kind) < rank(manifests[j].kind) })
	var out strings.Builder
	for _, m := range manifests {
		fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", m.source, m.body)
	}
	return out.String(), nil
}
