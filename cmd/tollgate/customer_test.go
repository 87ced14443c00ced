package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/tests/pgtest"
)

func customerRun(t *testing.T, url string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := customerCmd(t.Context(), args, &stdout, &stderr, func(k string) string {
		if k == "DATABASE_URL" {
			return url
		}
		return ""
	})
	return code, stdout.String(), stderr.String()
}

func TestCustomerSupportView(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	for _, sql := range []string{
		`SELECT tollgate.define_plan('free', true)`,
		`SELECT tollgate.define_feature('api_calls', 'month', 'hard', '{50,100}')`,
		`SELECT tollgate.set_limit('free', 'api_calls', 10)`,
		`SELECT tollgate.define_feature('seats', 'lifetime')`,
		`SELECT tollgate.set_limit('free', 'seats', 2)`,
		`SELECT tollgate.set_customer('ada', 'ada@example.test', 'cus_Ada')`,
		`SELECT tollgate.grant('ada', 'api_calls', 5, NULL, 'sorry for the outage')`,
		`SELECT tollgate.set_override('ada', 'seats', 4, NULL, 'partner')`,
		`SELECT tollgate.consume('ada', 'api_calls', 12)`,
	} {
		db.Exec(t, sql)
	}
	code, out, errOut := customerRun(t, db.AdminURL, "ada")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "Customer ada\n  plan free, email ada@example.test, Stripe cus_Ada")
	require.Regexp(t, `api_calls\s+12\s+10\s+3\s+\d{4}-\d\d-\d\d`, out)
	require.Regexp(t, `seats\s+0\s+4\s+0\s+never\s+4 until cleared \(partner\)`, out)
	require.Contains(t, out, "grant #1 of api_calls: 2 spent of 5, expires never, sorry for the outage")
	require.Regexp(t, `api_calls threshold at 100% \(12 of 10\)`, out)

	code, out, errOut = customerRun(t, db.AdminURL, "--format", "json", "ada")
	require.Equal(t, 0, code, errOut)
	var doc map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &doc))
	require.Equal(t, "free", doc["plan"])

	code, out, _ = customerRun(t, db.AdminURL, "nobody")
	require.Equal(t, 0, code)
	require.Contains(t, out, "not seen yet")

	// the app's role may not; bad input is a usage error
	code, _, errOut = customerRun(t, db.AppURL, "ada")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "tollgate_admin")
	code, _, _ = customerRun(t, db.AdminURL, strings.Repeat("x", 300))
	require.Equal(t, 2, code)
	code, _, _ = customerRun(t, db.AdminURL)
	require.Equal(t, 2, code)
}
