// Renders Ollama Modelfile templates the way Ollama's server does, for the tests of
// `ftc export --format ollama`: Go's text/template with the option missingkey=zero and a
// `json` function; the Modelfile's SYSTEM put in front of a conversation whose first message
// is not a system one; consecutive messages of one role joined with a blank line; the
// template given "System" (every system message, joined), "Messages" and "Response" ("").
//
// Input (stdin, JSON): {"template": "...", "system": "...", "conversations": [[{"role", "content"}...]...]}
// Output (stdout, JSON): the rendered prompts, one per conversation.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/template"
)

type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type request struct {
	Template      string      `json:"template"`
	System        string      `json:"system"`
	Conversations [][]Message `json:"conversations"`
}

func collate(msgs []Message) (string, []*Message) {
	var system []string
	var out []*Message
	for i := range msgs {
		m := msgs[i]
		if m.Role == "system" {
			system = append(system, m.Content)
		}
		if len(out) > 0 && out[len(out)-1].Role == m.Role {
			out[len(out)-1].Content += "\n\n" + m.Content
		} else {
			out = append(out, &m)
		}
	}
	return strings.Join(system, "\n\n"), out
}

func main() {
	var req request
	if err := json.NewDecoder(os.Stdin).Decode(&req); err != nil {
		fmt.Fprintln(os.Stderr, "bad input:", err)
		os.Exit(2)
	}
	funcs := template.FuncMap{"json": func(v any) string { b, _ := json.Marshal(v); return string(b) }}
	tmpl, err := template.New("").Option("missingkey=zero").Funcs(funcs).Parse(req.Template)
	if err != nil {
		fmt.Fprintln(os.Stderr, "template:", err)
		os.Exit(1)
	}
	var rendered []string
	for _, conv := range req.Conversations {
		msgs := conv
		if req.System != "" && (len(msgs) == 0 || msgs[0].Role != "system") {
			msgs = append([]Message{{Role: "system", Content: req.System}}, msgs...)
		}
		system, collated := collate(msgs)
		var b strings.Builder
		if err := tmpl.Execute(&b, map[string]any{"System": system, "Messages": collated, "Response": ""}); err != nil {
			fmt.Fprintln(os.Stderr, "execute:", err)
			os.Exit(1)
		}
		rendered = append(rendered, b.String())
	}
	json.NewEncoder(os.Stdout).Encode(rendered)
}
