package mailer

import "testing"

// Rendering one upgrade prompt (subject, text and HTML) from the built-in templates.
func BenchmarkRenderUpgradePrompt(b *testing.B) {
	tpl, err := LoadTemplates("")
	if err != nil {
		b.Fatal(err)
	}
	d := SampleData("api_calls")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := tpl.Render("upgrade_prompt", d); err != nil {
			b.Fatal(err)
		}
	}
}
