//! Go-derived tests of `range`, `with`, `break`/`continue`, variables, `define`/`template`/`block` and Go's `slice`, `html`, `js`, `urlquery`, `call`: outputs.
//!
//! Every expected output and message below was produced by Go's text/template (Go 1.26)
//! executing the same template against a Go record of the same shape as `record()`.

use super::tests::*;
use super::*;

#[test]
fn go_outputs_1() {
    check_all(&[
        ("{{ .Payload.After.zero }}|{{ .Payload.After.fz }}|{{ .Payload.After.big }}|{{ .Key.id }}", "0|0|1e+06|7"),
        ("{{ $ := 1 }}{{ $ }}", "1"),
        ("{{ $ = 1 }}{{ $ }}", "1"),
        ("{{ $x := 1 }}{{ $x }}{{ $x = 2 }}{{ $x }}", "12"),
        ("{{ if true }}{{ $x := 1 }}{{ else }}{{ $x }}{{ end }}", ""),
        ("{{ ($x := 1) }}{{ $x }}", "11"),
        ("{{ print ($x := 1) }}{{ $x }}", "11"),
        ("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ $y := 3 }}{{ end }}{{ $x }}", "2"),
        ("{{ $x := 1 }}{{ if true }}{{ $x := 2 }}{{ end }}{{ $x }}", "1"),
        ("{{ range $i, $v := .Payload.After.list }}{{ $i }}={{ $v }};{{ end }}", "0=1;1=2.5;2=x;3=<no value>;4=true;"),
        ("{{ range $v := .Payload.After.list }}{{ $v }};{{ end }}", "1;2.5;x;<no value>;true;"),
        ("{{ range .Payload.After.list }}{{ . }};{{ end }}", "1;2.5;x;<no value>;true;"),
        ("{{ range $k, $v := .Payload.After.nested }}{{ $k }}={{ $v }};{{ end }}", "a=[1 map[k:v]];z=1;"),
        ("{{ range .Metadata }}{{ . }};{{ end }}", ";1700000000;postgres;hello;"),
        ("{{ range $k, $v := .Metadata }}{{ $k }}={{ $v }};{{ end }}", "empty=;opencdc.readAt=1700000000;table=postgres;x=hello;"),
        ("{{ range 3 }}{{ . }};{{ end }}", "0;1;2;"),
        ("{{ range $i := 3 }}{{ $i }};{{ end }}", "0;1;2;"),
        ("{{ range 0 }}x{{ else }}none{{ end }}", "none"),
        ("{{ range -2 }}x{{ else }}none{{ end }}", "none"),
        ("{{ range .Payload.After.emptyl }}x{{ else }}empty{{ end }}", "empty"),
        ("{{ range .Payload.After.missing }}x{{ else }}missing{{ end }}", "missing"),
        ("{{ range .Payload.After.nul }}x{{ else }}nul{{ end }}", "nul"),
        ("{{ range .Payload.Before }}{{ . }};{{ end }}", "104;105;"),
        ("{{ range .Position }}{{ . }};{{ end }}", "112;111;115;45;49;"),
        ("{{ range .Payload.After.age }}{{ . }};{{ end }}", "0;1;2;3;4;5;6;7;8;9;10;11;12;13;14;15;16;17;18;19;20;21;22;23;24;25;26;27;28;29;"),
        ("{{ range .Key }}{{ . }};{{ end }}", "7;"),
        ("{{ range $i, $e := .Payload.After.list }}{{ if eq $i 2 }}{{ break }}{{ end }}{{ $e }};{{ end }}", "1;2.5;"),
        ("{{ range $i, $e := .Payload.After.list }}{{ if eq $i 2 }}{{ continue }}{{ end }}{{ $e }};{{ end }}", "1;2.5;<no value>;true;"),
        ("{{ range 3 }}{{ with 1 }}{{ break }}{{ end }}x{{ end }}", ""),
        ("{{ with .Payload.After.a }}{{ .b.c }}{{ end }}", "deep"),
        ("{{ with .Payload.After.missing }}x{{ else }}no{{ end }}", "no"),
        ("{{ with .Payload.After.missing }}x{{ else with .Metadata.table }}{{ . }}{{ else }}no{{ end }}", "postgres"),
        ("{{ with $x := .Payload.After.name }}{{ $x }}{{ . }}{{ end }}", "alicealice"),
        ("{{ define \"x\" }}X{{ .id }}{{ end }}{{ template \"x\" .Key }}", "X7"),
        ("{{ define \"x\" }}{{ .Foo }}{{ end }}{{ template \"x\" }}", "<no value>"),
        ("{{ define \"x\" }}A{{ end }}{{ define \"x\" }}{{ end }}{{ template \"x\" }}", "A"),
        ("{{ define \"x\" }}{{ end }}{{ define \"x\" }}B{{ end }}{{ template \"x\" }}", "B"),
        ("{{ block \"b\" .Metadata }}{{ .table }}{{ end }}", "postgres"),
        ("{{ define \"x\" }}{{ $ }}{{ end }}{{ template \"x\" 5 }}", "5"),
        ("{{ $i := 0 }}{{ $v := 0 }}{{ range $i, $v = .Payload.After.list }}{{ end }}{{ $i }}{{ $v }}", "4true"),
    ]);
}

#[test]
fn go_outputs_2() {
    check_all(&[
        ("{{ $v := 0 }}{{ range $v = .Payload.After.list }}{{ end }}{{ $v }}", "true"),
        ("{{ $v := 0 }}{{ range $v = 3 }}{{ end }}{{ $v }}", "2"),
        ("{{ range $x := .Payload.After.emptyl }}{{ else }}{{ $x }}{{ end }}", "[]"),
        ("{{ $x := .Payload.After }}{{ $x.a.b.c }}|{{ $x.name }}|{{ $.Metadata.table }}|{{ $x.missing }}", "deep|alice|postgres|<no value>"),
        ("{{ $x := 1 }}{{ $x := 2 }}{{ $x }}", "2"),
        ("{{ with .Payload.After }}{{ $.Metadata.table }}{{ .name }}{{ end }}", "postgresalice"),
        ("{{ range .Payload.After.list }}{{ $x := . }}{{ $x }}{{ end }}", "12.5x<no value>true"),
        ("{{ slice \"hello\" 1 3 }}|{{ slice \"hello\" 2 }}|{{ slice \"hello\" }}|{{ slice .Payload.After.list 1 3 }}|{{ slice .Payload.Before 1 }}", "el|llo|hello|[2.5 x]|[105]"),
        ("{{ slice .Payload.After.list 1 2 3 }}", "[2.5]"),
        ("{{ html \"<a href='x'>&\\\"\" }}|{{ html 1 2 }}|{{ html \"a\" \"b\" }}|{{ html .Metadata.missing }}|{{ html }}", "&lt;a href=&#39;x&#39;&gt;&amp;&#34;|1 2|ab|&lt;no value&gt;|"),
        ("{{ js \"<a href='x'>&\\\"=\\\\\\n\\t\\u00e9\\u200b\" }}|{{ js 1 \"x\" }}", "\\u003Ca href\\u003D\\'x\\'\\u003E\\u0026\\\"\\u003D\\\\\\u000A\\u0009é\\u200B|1x"),
        ("{{ urlquery \"a b&c=d/é~-_.\" }}|{{ urlquery 1 2 }}", "a+b%26c%3Dd%2F%C3%A9~-_.|1+2"),
        ("{{ html nil }}", "&lt;no value&gt;"),
        ("{{ print nil }}", "<nil>"),
        ("{{ index .Payload.After.list 1 }}", "2.5"),
        ("{{ if $x := .Metadata.table }}{{ $x }}{{ else if $y := 1 }}{{ $x }}{{ $y }}{{ end }}", "postgres"),
        ("{{ if $x := .Metadata.missing }}{{ $x }}{{ else if $y := 1 }}{{ $x }}{{ $y }}{{ end }}", "<no value>1"),
        ("{{ with $x := 0 }}a{{ else with $y := 2 }}{{ $x }}{{ $y }}{{ . }}{{ end }}", "022"),
        ("{{ range 3 }}{{ if eq . 1 }}{{ continue }}{{ end }}{{ . }}{{ else }}e{{ end }}", "02"),
        ("{{ range 2 }}{{ range 3 }}{{ if eq . 1 }}{{ break }}{{ end }}{{ . }}{{ end }};{{ end }}", "0;0;"),
        ("{{ define \"x\" }}{{ template \"y\" . }}{{ end }}{{ define \"y\" }}Y{{ . }}{{ end }}{{ template \"x\" 3 }}", "Y3"),
        ("{{ $x := 1 }}", ""),
        ("a {{- $x := 1 -}} b", "ab"),
        ("{{ $x := 1 | print }}{{ $x }}", "1"),
        ("{{ $x := print 1 2 }}{{ $x }}", "1 2"),
        ("{{ $x:=1 }}{{ $x }}", "1"),
        ("{{ $ }}", "{pos-1 create map[empty: opencdc.readAt:1700000000 table:postgres x:hello] map[id:7] {[104 105] map[a:map[b:map[c:deep]] age:30 big:1e+06 emptyl:[] emptym:map[] emptys: f:false fz:0 list:[1 2.5 x <nil> true] name:alice nested:map[a:[1 map[k:v]] z:1] nul:<nil> score:3.5 t:true zero:0]}}"),
        ("{{ and 1 0 }}{{ or (print) 3 }}", "03"),
        ("{{ range .Payload.After.list }}{{ $ }}{{ break }}{{ end }}", "{pos-1 create map[empty: opencdc.readAt:1700000000 table:postgres x:hello] map[id:7] {[104 105] map[a:map[b:map[c:deep]] age:30 big:1e+06 emptyl:[] emptym:map[] emptys: f:false fz:0 list:[1 2.5 x <nil> true] name:alice nested:map[a:[1 map[k:v]] z:1] nul:<nil> score:3.5 t:true zero:0]}}"),
        ("{{ with .Payload.After }}{{ .Foo }}{{ end }}", "<no value>"),
        ("{{ with .Payload }}{{ .After.name }}{{ end }}", "alice"),
        ("{{ with .Operation }}{{ .String }}{{ end }}", "create"),
        ("{{ define \"x\" }}{{ .Foo }}{{ end }}{{ template \"x\" .Payload.After }}", "<no value>"),
        ("{{ template \"x\" }}{{ define \"x\" }}{{ $ }}{{ end }}", "<no value>"),
        ("{{ define \"x\" }}a{{ end }}b{{ template \"x\" }}", "ba"),
        ("{{ range $i, $e := .Metadata }}{{ $i }}{{ end }}", "emptyopencdc.readAttablex"),
        ("{{ range $i, $e := .Payload.Before }}{{ $i }}{{ $e }};{{ end }}", "0104;1105;"),
        ("{{ range $x := .Payload.After.list }}{{ $x := 5 }}{{ $x }}{{ end }}", "55555"),
        ("{{ range .Payload.After.nul }}{{ end }}{{ range .Payload.After.emptym }}x{{ else }}em{{ end }}", "em"),
        ("{{ js \"\\u2028\\u0001\\u007f\" }}|{{ urlquery \"\" }}|{{ html \"\" }}|{{ js }}|{{ urlquery }}", "\\u2028\\u0001\u{7f}||||"),
    ]);
}

#[test]
fn go_outputs_3() {
    check_all(&[
        ("{{ html .Payload.After.list }}|{{ js .Payload.After.a }}|{{ html .Operation }}|{{ urlquery .Position }}", "[1 2.5 x &lt;nil&gt; true]|map[b:map[c:deep]]|create|pos-1"),
        ("{{ slice \"héllo\" 1 2 }}", "�"),
        ("{{ define \"a\" }}A{{ end }}{{ define \"b\" }}{{ template \"a\" }}B{{ end }}{{ template \"b\" }}", "AB"),
        ("{{- define \"x\" -}} x {{- end -}} {{ template \"x\" }}", "x"),
        ("{{ define \"x\" }}{{ $ = 3 }}{{ $ }}{{ end }}{{ template \"x\" 1 }}{{ $.Metadata.x }}", "3hello"),
        ("{{ template \"x\" (print 1) }}{{ define \"x\" }}[{{ . }}]{{ end }}", "[1]"),
        ("{{ block \"x\" 3 }}[{{ . }}]{{ end }}{{ template \"x\" 4 }}", "[3][4]"),
        ("{{ $x := 3 }}{{ range $x }}{{ . }}{{ end }}\n", "012\n"),
        ("{{- range $i, $e := .Payload.After.list -}}\n  {{ $i }}:{{ $e }}\n{{ end -}}", "0:1\n1:2.5\n2:x\n3:<no value>\n4:true\n"),
        ("{{ range .Payload.After.nested.a }}{{/* c */}}[{{ . }}]{{ end }}", "[1][map[k:v]]"),
        ("{{ range .Payload.After.list }}{{ if . }}{{ printf \"%v|\" . }}{{ else }}falsy|{{ end }}{{ end }}", "1|2.5|x|falsy|true|"),
        ("{{ with $l := .Payload.After.list }}{{ index $l 2 }}{{ len $l }}{{ index . 0 }}{{ end }}", "x51"),
        ("{{ $found := false }}{{ range .Payload.After.list }}{{ if eq (printf \"%v\" .) \"x\" }}{{ $found = true }}{{ end }}{{ end }}{{ $found }}", "true"),
        ("{{ range $i, $e := .Payload.After.list }}{{ if ge $i 3 }}{{ break }}{{ end }}{{ $i }}{{ end }}|{{ range 5 }}{{ if lt . 2 }}{{ continue }}{{ end }}{{ . }}{{ end }}", "012|234"),
        ("{{ $x := \"a\" }}{{ with $x := \"b\" }}{{ $x }}{{ end }}{{ $x }}", "ba"),
        ("{{ $x := \"a\" }}{{ range 2 }}{{ $x = printf \"%s%d\" $x . }}{{ end }}{{ $x }}", "a01"),
        ("{{ $x := .Payload.After.missing }}{{ $x }}|{{ $x.y }}|{{ if $x }}t{{ else }}f{{ end }}", "<no value>|<no value>|f"),
        ("{{ $x := .Payload.After.nul }}{{ $x }}|{{ print $x }}", "<no value>|<nil>"),
        ("{{ with .Metadata.table }}{{ . | printf \"%q\" }}{{ end }}", "\"postgres\""),
        ("{{ range $i, $e := .Payload.After.list }}{{ and $e $i }},{{ end }}", "0,1,2,<no value>,4,"),
        ("{{ with .Payload.After.emptys }}x{{ else with .Payload.After.zero }}y{{ else with .Payload.After.emptym }}z{{ else }}none{{ end }}", "none"),
        ("{{ define \"T1\" }}ONE{{ end }}{{ define \"T2\" }}TWO {{ template \"T1\" }}{{ end }}{{ define \"T3\" }}{{ template \"T1\" }} {{ template \"T2\" }}{{ end }}{{ template \"T3\" }}", "ONE TWO ONE"),
        ("{{ define \"show\" }}{{ .name }}/{{ $.age }}{{ end }}{{ template \"show\" .Payload.After }}", "alice/30"),
        ("{{ define \"x\" }}{{ range . }}{{ . }}{{ end }}{{ end }}{{ template \"x\" .Payload.After.nested.a }}", "1map[k:v]"),
        ("{{ block \"list\" .Payload.After.list }}{{ range . }}-{{ . }}{{ end }}{{ end }}", "-1-2.5-x-<no value>-true"),
        ("{{ slice .Payload.After.list 1 2 | len }}|{{ range slice .Payload.After.list 3 }}{{ . }};{{ end }}", "1|<no value>;true;"),
        ("{{ range $i, $e := .Payload.After.list }}{{ $i }}{{ $e }}{{ else }}never{{ end }}", "0112.52x3<no value>4true"),
        ("{{ range .Metadata }}{{ break }}{{ end }}ok", "ok"),
        ("{{ if true }}{{ $x := 1 }}{{ $x }}{{ end }}", "1"),
        ("{{ with 1 }}{{ $x := . }}{{ with 2 }}{{ $x }}{{ . }}{{ end }}{{ end }}", "12"),
        ("{{ print $ }}", "{pos-1 create map[empty: opencdc.readAt:1700000000 table:postgres x:hello] map[id:7] {[104 105] map[a:map[b:map[c:deep]] age:30 big:1e+06 emptyl:[] emptym:map[] emptys: f:false fz:0 list:[1 2.5 x <nil> true] name:alice nested:map[a:[1 map[k:v]] z:1] nul:<nil> score:3.5 t:true zero:0]}}"),
        ("{{ range .Payload.After.list }}{{ $.Payload.After.name }}{{ end }}", "alicealicealicealicealice"),
        ("{{ with .Payload.Before }}{{ printf \"%s\" . }}{{ end }}|{{ with .Position }}{{ . }}{{ end }}", "hi|pos-1"),
        ("{{ with .Key }}{{ .id }}{{ end }}|{{ with .Payload }}{{ with .After }}{{ .a.b.c }}{{ end }}{{ end }}", "7|deep"),
        ("{{ html \"<>\" | printf \"%s!\" }}|{{ \"a b\" | urlquery }}|{{ js `it's` }}", "&lt;&gt;!|a+b|it\\'s"),
        ("{{ $i := 5 }}{{ range $i = 3 }}{{ end }}{{ $i }}", "2"),
        ("{{ range $i, $v := .Metadata }}{{ $i }}{{ break }}{{ end }}", "empty"),
        ("{{ range $i := .Metadata }}{{ $i }};{{ end }}", ";1700000000;postgres;hello;"),
        ("{{ if eq 1 1 }}{{ range 2 }}a{{ end }}{{ else if eq 2 2 }}b{{ end }}", "aa"),
        ("{{ $x := 1 }}{{ define \"d\" }}{{ $ }}{{ end }}{{ $x }}{{ template \"d\" \"arg\" }}\n", "1arg\n"),
    ]);
}

/// A record without key or payload (nil `opencdc.Data` in Go).
#[test]
fn nil_data_in_control_structures() {
    let r = Record {
        operation: Operation::Update,
        ..Record::default()
    };
    for (text, want) in [
        (
            "{{/*nil*/}}{{ range .Key }}x{{ else }}nil{{ end }}",
            "template: :1:20: executing \"\" at <.Key>: range can't iterate over <nil>",
        ),
        (
            "{{/*nil*/}}{{ with .Key }}x{{ else }}nil{{ end }}|{{ if .Key }}x{{ end }}",
            "nil|",
        ),
        (
            "{{/*nil*/}}{{ range .Payload.Before }}x{{ else }}nil{{ end }}",
            "template: :1:28: executing \"\" at <.Payload.Before>: range can't iterate over <nil>",
        ),
    ] {
        let got = Template::parse(text).and_then(|t| t.render(&r));
        let got = got.unwrap_or_else(|e| e.to_string());
        assert_eq!(got, want, "{text}");
    }
}

/// Where Culvert knowingly differs from Go (see the crate docs).
#[test]
fn control_structure_deviations() {
    // Go ranges over the operation's number with operations as elements; here ints.
    assert_eq!(ok("{{ range .Operation }}{{ . }};{{ end }}"), "0;");
    // Go's limit is 100000 template calls on growable stacks; this one fits a thread's
    // stack (checked on a 2 MiB thread in a debug build).
    let t = Template::parse(
        r#"{{ define "r" }}{{ if 1 }}{{ with . }}{{ template "r" . }}{{ end }}{{ end }}{{ end }}{{ template "r" 1 }}"#,
    )
    .unwrap();
    let e = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || t.render(&record()).unwrap_err().to_string())
        .unwrap()
        .join()
        .unwrap();
    assert!(e.ends_with("exceeded maximum template depth (250)"), "{e}");
    assert!(
        e.contains(r#"executing "r" at <{{template "r" .}}>"#),
        "{e}"
    );
}

#[test]
fn control_templates_are_reusable_across_records() {
    let t = Template::parse(
        r#"{{ range $k, $v := .Metadata }}{{ $k }}={{ $v }};{{ else }}none{{ end }}{{ with .Key }}|{{ .id }}{{ end }}"#,
    )
    .unwrap();
    assert_eq!(
        t.render(&record()).unwrap(),
        "empty=;opencdc.readAt=1700000000;table=postgres;x=hello;|7"
    );
    assert_eq!(t.render(&Record::default()).unwrap(), "none");
    let mut r = record();
    r.metadata = [("a".to_owned(), "1".to_owned())].into_iter().collect();
    assert_eq!(t.render(&r).unwrap(), "a=1;|7");
    // A split result (Go's map[string]string) and a list built by `list` range too.
    assert_eq!(
        ok(r#"{{ range $k, $v := split "," "a,b" }}{{ $k }}:{{ $v }} {{ end }}"#),
        "_0:a _1:b "
    );
    assert_eq!(ok("{{ range list 3 1 2 }}{{ . }}{{ end }}"), "312");
}
