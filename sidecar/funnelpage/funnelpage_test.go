package funnelpage

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/internal/funnel"
	"github.com/tollgate/tollgate/internal/funnel/funneltest"
	"github.com/tollgate/tollgate/tests/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	testToken    = "s3cret-token"
	testUser     = "ops"
	testPassword = "pa55 word"
)

type testBundle struct {
	sidecar *pgxpool.Pool
	server  *httptest.Server
}

// setup serves the page, protected by a token and by basic auth, over a database holding funneltest's funnel.
func setup(t *testing.T) *testBundle {
	t.Helper()
	db := pgtest.NewDB(t)
	funneltest.Seed(t, db.Pool(t))
	pool, err := pgxpool.New(context.Background(), db.SidecarURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	page, err := New(Options{DB: pool, Auth: Auth{Token: testToken, User: testUser, Password: testPassword}})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", page)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &testBundle{sidecar: pool, server: srv}
}

func (b *testBundle) get(t testing.TB, path string, auth func(*http.Request)) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.server.URL+path, nil)
	require.NoError(t, err)
	if auth != nil {
		auth(req)
	}
	resp, err := b.server.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, string(body)
}

func bearer(token string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
}

func basic(user, password string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth(user, password) }
}

var (
	chartRE = regexp.MustCompile(`(?s)<svg[^>]*data-feature="([^"]*)"[^>]*>(.*?)</svg>`)
	stageRE = regexp.MustCompile(`data-stage="([a-z_]+)"[^>]*>([0-9]+)<`)
)

// shown reads the numbers of every chart of a page: feature -> stage -> number.
func shown(t testing.TB, html string) map[string]map[string]int64 {
	t.Helper()
	out := map[string]map[string]int64{}
	for _, m := range chartRE.FindAllStringSubmatch(html, -1) {
		stages := map[string]int64{}
		for _, s := range stageRE.FindAllStringSubmatch(m[2], -1) {
			n, err := strconv.ParseInt(s[2], 10, 64)
			require.NoError(t, err)
			stages[s[1]] = n
		}
		out[m[1]] = stages
	}
	return out
}

// fromSQL is what tollgate.funnel returns for a range of the page (since as the page takes it; "" = 30d), in the
// shape of shown.
func (b *testBundle) fromSQL(t testing.TB, since string) map[string]map[string]int64 {
	t.Helper()
	from, until, err := funnel.ParseRange(since, "", time.Now())
	require.NoError(t, err)
	rows, err := funnel.Query(context.Background(), b.sidecar, from, until)
	require.NoError(t, err)
	out := map[string]map[string]int64{}
	for _, r := range rows {
		out[r.Name()] = map[string]int64{"hit_threshold": r.HitThreshold, "hit_limit": r.HitLimit,
			"prompted": r.Prompted, "clicked": r.Clicked, "attributed": r.Attributed, "organic": r.Organic}
	}
	return out
}

var (
	variantRowRE = regexp.MustCompile(`(?s)<tr data-variant="([a-z_]+)"[^>]*>(.*?)</tr>`)
	cellRE       = regexp.MustCompile(`data-n="([a-z_]+)">([^<]*)<`)
	winnerRE     = regexp.MustCompile(`data-winner="([a-z_]*)"`)
	lineRE       = regexp.MustCompile(`<polyline data-variant="([a-z_]+)" points="([0-9, ]+)"`)
)

// shownExperiment reads an experiment's table from a page: variant -> hit_limit, prompted, clicked, converted;
// and the winner it names.
func shownExperiment(t testing.TB, html string) (map[string][4]int64, string) {
	t.Helper()
	out := map[string][4]int64{}
	for _, m := range variantRowRE.FindAllStringSubmatch(html, -1) {
		var row [4]int64
		for _, c := range cellRE.FindAllStringSubmatch(m[2], -1) {
			i := map[string]int{"hit_limit": 0, "prompted": 1, "clicked": 2, "converted": 3}
			if k, ok := i[c[1]]; ok {
				n, err := strconv.ParseInt(c[2], 10, 64)
				require.NoError(t, err)
				row[k] = n
			}
		}
		out[m[1]] = row
	}
	w := winnerRE.FindStringSubmatch(html)
	require.NotNil(t, w, "the page says whether there is a winner")
	return out, w[1]
}

func TestNewRefusesMissingOrHalfCredentials(t *testing.T) {
	t.Parallel()
	_, err := New(Options{})
	require.ErrorIs(t, err, ErrNoAuth)
	_, err = New(Options{Auth: Auth{User: "ops"}})
	require.ErrorIs(t, err, ErrHalfBasicAuth)
	_, err = New(Options{Auth: Auth{Token: "t", Password: "p"}})
	require.ErrorIs(t, err, ErrHalfBasicAuth)
	require.False(t, Auth{}.Enabled())
	require.True(t, Auth{Token: "t"}.Enabled())
}

func TestPageAuth(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for name, tc := range map[string]struct {
		path string
		auth func(*http.Request)
		code int
	}{
		"nothing":        {"/", nil, http.StatusUnauthorized},
		"wrong bearer":   {"/", bearer("nope"), http.StatusUnauthorized},
		"prefix bearer":  {"/", bearer(testToken[:4]), http.StatusUnauthorized},
		"wrong query":    {"/?token=nope", nil, http.StatusUnauthorized},
		"wrong password": {"/", basic(testUser, "nope"), http.StatusUnauthorized},
		"wrong user":     {"/", basic("root", testPassword), http.StatusUnauthorized},
		"token as basic": {"/", basic(testToken, testToken), http.StatusUnauthorized},
		"bearer":         {"/", bearer(testToken), http.StatusOK},
		"query":          {"/?token=" + testToken, nil, http.StatusOK},
		"basic":          {"/", basic(testUser, testPassword), http.StatusOK},
		"other path":     {"/admin", bearer(testToken), http.StatusNotFound},
	} {
		code, h, body := b.get(t, tc.path, tc.auth)
		require.Equal(t, tc.code, code, name)
		if code == http.StatusUnauthorized {
			require.Equal(t, `Basic realm="tollgate", charset="UTF-8"`, h.Get("WWW-Authenticate"), name)
			require.NotContains(t, body, "<svg", name)
		}
		if code == http.StatusOK {
			require.Equal(t, "no-store", h.Get("Cache-Control"), name)
			require.Contains(t, h.Get("Content-Security-Policy"), "default-src 'none'", name)
			require.Equal(t, "no-referrer", h.Get("Referrer-Policy"), name)
		}
	}

	// a page reached with ?token= keeps it in its links and form; one reached otherwise never shows it
	_, _, body := b.get(t, "/?token="+testToken, nil)
	require.Contains(t, body, `href="?since=7d&amp;token=`+testToken+`"`)
	require.Contains(t, body, `name="token" value="`+testToken+`"`)
	_, _, body = b.get(t, "/", bearer(testToken))
	require.NotContains(t, body, testToken)

	resp, err := b.server.Client().Post(b.server.URL+"/", "text/plain", strings.NewReader("x"))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}

func TestPageShowsTheFunnel(t *testing.T) {
	t.Parallel()
	b := setup(t)
	code, _, body := b.get(t, "/", bearer(testToken))
	require.Equal(t, http.StatusOK, code)
	got := shown(t, body)
	require.Equal(t, b.fromSQL(t, ""), got)
	for name, want := range funneltest.Want {
		require.Equal(t, map[string]int64{"hit_threshold": want[0], "hit_limit": want[1], "prompted": want[2],
			"clicked": want[3], "attributed": want[5], "organic": want[6]}, got[name], name)
	}
	// the total first, then the experiments and trials, then the features
	require.Less(t, strings.Index(body, `data-feature="(total)"`), strings.Index(body, `data-experiment="search"`))
	require.Less(t, strings.Index(body, `data-experiment="search"`), strings.Index(body, `data-trials="2"`))
	require.Less(t, strings.Index(body, `data-trials="2"`), strings.Index(body, `data-feature="api"`))
	require.Less(t, strings.Index(body, `data-feature="api"`), strings.Index(body, `data-feature="export"`))
	// the experiment: its numbers, the winner, a line per variant over the range (a point a day)
	exp, winner := shownExperiment(t, body)
	require.Equal(t, funneltest.WantExperiment, exp)
	require.Equal(t, "short", winner)
	lines := lineRE.FindAllStringSubmatch(body, -1)
	require.Len(t, lines, 2)
	for _, l := range lines {
		require.Len(t, strings.Fields(l[2]), 30, l[1])
	}
	require.Contains(t, body, `<strong data-fact="trials_converted">1</strong> (50.0%)`)
	// rate and times: api 6 of 20 prompted, converted 1 to 6 hours after the prompt
	require.Contains(t, body, `<strong data-fact="rate">30.0%</strong>`)
	require.Contains(t, body, `<strong data-fact="median">3h 30m</strong>`)
	require.NotContains(t, body, "http://")
	require.NotContains(t, body, "https://")
	require.NotContains(t, body, "<script")
}

func TestPageRange(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// a range before everything: the total chart only, all zero; the experiment without customers, no winner
	day := time.Now().UTC().AddDate(0, 0, -40).Format(time.DateOnly)
	code, _, body := b.get(t, "/?since="+day+"&until="+day, bearer(testToken))
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, map[string]map[string]int64{funnel.TotalName: {
		"hit_threshold": 0, "hit_limit": 0, "prompted": 0, "clicked": 0, "attributed": 0, "organic": 0}}, shown(t, body))
	exp, winner := shownExperiment(t, body)
	require.Equal(t, map[string][4]int64{"control": {}, "short": {}}, exp)
	require.Empty(t, winner)
	require.NotContains(t, body, `data-trials=`)
	require.Contains(t, body, `name="since" value="`+day+`"`)
	require.Contains(t, body, `name="until" value="`+day+`"`)

	code, _, body = b.get(t, "/?since=2d", bearer(testToken))
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, b.fromSQL(t, "2d"), shown(t, body))

	for _, q := range []string{"since=yesterday", "since=1d&until=2d", "until=2000-01-01"} {
		code, _, body = b.get(t, "/?"+q, bearer(testToken))
		require.Equal(t, http.StatusBadRequest, code, q)
		require.Contains(t, body, `role="alert"`, q)
		require.NotContains(t, body, "<svg", q)
	}
}
