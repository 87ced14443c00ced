package mailer

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"
	texttemplate "text/template"
	"time"
)

// The built-in templates. A template NAME is three files: NAME.subject.tmpl and NAME.txt.tmpl (text/template)
// and NAME.html.tmpl (html/template, which escapes for HTML).
//
//go:embed templates/*.tmpl
var builtin embed.FS

// Data is what a template sees.
type Data struct {
	// Subject is the rendered subject (empty while the subject itself renders).
	Subject  string
	Customer string // the app's customer key
	Email    string // the recipient
	Feature  string
	Plan     string
	Used     int64
	Quota    int64
	// ResetsAt is when the window resets; nil for windows that do not end at a fixed time (rolling, lifetime).
	ResetsAt *time.Time
	// Message is the feature's message from tollgate.yaml (its prompt variant's, when that has one); empty when
	// it has none.
	Message string
	// UpgradeURL is where the email's upgrade button goes: the customer's signed upgrade link (one click to
	// Stripe Checkout) when upgrade links are on, else email.upgrade_url.
	UpgradeURL string
	// PricingURL is email.upgrade_url, the static pricing page.
	PricingURL string
	// Variant is the prompt variant of the email; empty when the feature has no experiment.
	Variant string
}

// SampleData is what `tollgate preview-email` and the start-up check render with.
func SampleData(feature string) Data {
	resets := time.Date(2030, 1, 31, 0, 0, 0, 0, time.UTC)
	return Data{
		Customer: "cus_preview", Email: "preview@example.test", Feature: feature, Plan: "free",
		Used: 100, Quota: 100, ResetsAt: &resets, UpgradeURL: "https://example.test/pricing",
		PricingURL: "https://example.test/pricing",
	}
}

var funcs = map[string]any{
	// human turns a name such as api_calls into "api calls".
	"human": func(s string) string { return strings.ReplaceAll(s, "_", " ") },
	// date formats a time (or a *time.Time; nil gives "") as "2 January 2006" in UTC.
	"date": func(v any) string {
		switch t := v.(type) {
		case time.Time:
			return t.UTC().Format("2 January 2006")
		case *time.Time:
			if t != nil {
				return t.UTC().Format("2 January 2006")
			}
		}
		return ""
	},
}

var (
	nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
	fileRE = regexp.MustCompile(`^(.+)\.(subject|txt|html)\.tmpl$`)
)

type template struct {
	subject *texttemplate.Template
	text    *texttemplate.Template
	html    *htmltemplate.Template
}

// Templates are the email templates: the built-in ones, overridden file by file by a directory's.
type Templates struct {
	byName map[string]*template
}

// LoadTemplates parses the built-in templates and, when dir is not "", the *.tmpl files of dir, which override
// built-in files of the same name and may add templates. Each template is rendered once with sample data, so a
// template that cannot render fails here, at start-up, rather than when an email is due.
func LoadTemplates(dir string) (*Templates, error) {
	sources := map[string]map[string]string{} // name -> part -> source
	origin := map[string]string{}             // name.part -> file, for messages
	add := func(fsys fs.FS, root, label string) error {
		entries, err := fs.ReadDir(fsys, root)
		if err != nil {
			return err
		}
		for _, e := range entries {
			m := fileRE.FindStringSubmatch(e.Name())
			if e.IsDir() || m == nil {
				continue
			}
			if !nameRE.MatchString(m[1]) {
				return fmt.Errorf("%s: template name %q must match %s", path.Join(label, e.Name()), m[1], nameRE)
			}
			src, err := fs.ReadFile(fsys, path.Join(root, e.Name()))
			if err != nil {
				return err
			}
			if sources[m[1]] == nil {
				sources[m[1]] = map[string]string{}
			}
			sources[m[1]][m[2]] = string(src)
			origin[m[1]+"."+m[2]] = path.Join(label, e.Name())
		}
		return nil
	}
	if err := add(builtin, "templates", "built-in templates"); err != nil {
		return nil, err
	}
	if dir != "" {
		if err := add(os.DirFS(dir), ".", dir); err != nil {
			return nil, fmt.Errorf("email templates: %w", err)
		}
	}

	t := &Templates{byName: map[string]*template{}}
	var errs []error
	for name, parts := range sources {
		var missing []string
		for _, part := range []string{"subject", "txt", "html"} {
			if _, ok := parts[part]; !ok {
				missing = append(missing, name+"."+part+".tmpl")
			}
		}
		if len(missing) > 0 {
			errs = append(errs, fmt.Errorf("email template %s in %s: missing %s", name, dir, strings.Join(missing, ", ")))
			continue
		}
		tp := &template{}
		var err error
		if tp.subject, err = texttemplate.New(origin[name+".subject"]).Funcs(funcs).Parse(parts["subject"]); err != nil {
			errs = append(errs, err)
			continue
		}
		if tp.text, err = texttemplate.New(origin[name+".txt"]).Funcs(funcs).Parse(parts["txt"]); err != nil {
			errs = append(errs, err)
			continue
		}
		if tp.html, err = htmltemplate.New(origin[name+".html"]).Funcs(funcs).Parse(parts["html"]); err != nil {
			errs = append(errs, err)
			continue
		}
		t.byName[name] = tp
		// every branch that sample data can reach: with and without a reset time and a message
		for _, d := range sampleVariants(name) {
			if _, err := tp.render(d); err != nil {
				errs = append(errs, err)
				delete(t.byName, name)
				break
			}
		}
	}
	if len(errs) > 0 {
		sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
		return nil, errors.Join(errs...)
	}
	return t, nil
}

func sampleVariants(feature string) []Data {
	a := SampleData(feature)
	b := a
	b.ResetsAt, b.Message = nil, "You've reached your free tier limit. Upgrade to continue."
	return []Data{a, b}
}

// Names lists the templates, sorted.
func (t *Templates) Names() []string {
	names := make([]string, 0, len(t.byName))
	for n := range t.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Has reports whether a template exists.
func (t *Templates) Has(name string) bool { _, ok := t.byName[name]; return ok }

// Rendered is one rendered email.
type Rendered struct{ Subject, Text, HTML string }

// Render renders template name with d.
func (t *Templates) Render(name string, d Data) (Rendered, error) {
	tp, ok := t.byName[name]
	if !ok {
		return Rendered{}, fmt.Errorf("no email template %q (templates: %s)", name, strings.Join(t.Names(), ", "))
	}
	return tp.render(d)
}

func (tp *template) render(d Data) (Rendered, error) {
	var r Rendered
	var b bytes.Buffer
	d.Subject = ""
	if err := tp.subject.Execute(&b, d); err != nil {
		return r, err
	}
	r.Subject = oneLine(b.String())
	if r.Subject == "" {
		return r, fmt.Errorf("%s: the subject is empty", tp.subject.Name())
	}
	d.Subject = r.Subject
	b.Reset()
	if err := tp.text.Execute(&b, d); err != nil {
		return r, err
	}
	r.Text = b.String()
	b.Reset()
	if err := tp.html.Execute(&b, d); err != nil {
		return r, err
	}
	r.HTML = b.String()
	return r, nil
}

// oneLine collapses runs of white space (new lines too) into single spaces.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
