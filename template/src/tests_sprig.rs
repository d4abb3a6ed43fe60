//! Tests of the sprig functions added for Conduit compatibility. Every expected output
//! (and error message) below was produced by Go's text/template with sprig v3.3.0's
//! `TxtFuncMap`, the library Conduit uses.

use super::*;

/// Render with a record that has no data (the Go outputs were produced with nil data).
fn go_render(text: &str) -> Result<String, String> {
    let t = Template::parse(text).map_err(|e| e.to_string())?;
    t.render(&Record::default()).map_err(|e| e.to_string())
}

fn check(cases: &[(&str, Result<&str, &str>)]) {
    let mut failures = Vec::new();
    for (text, want) in cases {
        let got = go_render(text);
        let want = want.map(str::to_owned).map_err(str::to_owned);
        if got != want {
            failures.push(format!("{text}\n   want {want:?}\n   got  {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn check_ok(cases: &[(&str, &str)]) {
    let cases: Vec<(&str, Result<&str, &str>)> = cases.iter().map(|&(t, w)| (t, Ok(w))).collect();
    check(&cases);
}

/// True when the server's zone is UTC at the instants the Local tests use (they were
/// produced with Go in UTC).
fn local_is_utc() -> bool {
    let loc = local();
    [0, 1_500_000_000, 1_700_000_000, 1_720_000_000]
        .iter()
        .all(|&t| loc.lookup(t).offset == 0)
}

fn has_zoneinfo() -> bool {
    [
        "America/New_York",
        "Asia/Kolkata",
        "Europe/London",
        "Australia/Lord_Howe",
    ]
    .iter()
    .all(|z| std::path::Path::new("/usr/share/zoneinfo").join(z).exists())
}

#[test]
fn sprig_functions_match_go() {
    check(&[
        ("{{ dateInZone \"2006-01-02T15:04:05Z07:00\" 1700000000 \"UTC\" }}", Ok("2023-11-14T22:13:20Z")),
        ("{{ dateInZone \"Mon Jan _2 15:04:05 MST 2006\" 1700000000 \"UTC\" }}", Ok("Tue Nov 14 22:13:20 UTC 2023")),
        ("{{ dateInZone \"January 2, 2006 3:04:05 PM -0700\" 1700000000 \"UTC\" }}", Ok("November 14, 2023 10:13:20 PM +0000")),
        ("{{ dateInZone \"Monday Mon Jan January 1 01 2 02 _2 __2 002 15 3 03 4 04 5 05 06 2006 PM pm\" 1700000000 \"UTC\" }}", Ok("Tuesday Tue Nov November 11 11 14 14 14 318 318 22 10 10 13 13 20 20 23 2023 PM pm")),
        ("{{ dateInZone \"Z07:00 Z0700 Z07 -07:00:00 -070000 -07\" 0 \"UTC\" }}", Ok("Z Z Z +00:00:00 +000000 +00")),
        ("{{ dateInZone \"06 2006 _2 __2 002\" -62135596800 \"UTC\" }}", Ok("01 0001  1   1 001")),
        ("{{ dateInZone \".000000000 .99 ,000\" 0 \"UTC\" }}", Ok(".000000000  ,000")),
        ("{{ dateInZone \"Jana Mona _2006\" 0 \"UTC\" }}", Ok("Jana Mona _1970")),
        ("{{ dateInZone \"2006-01-02 15:04 MST\" 1700000000 \"Nowhere/Zone\" }}", Ok("2023-11-14 22:13 UTC")),
        ("{{ dateInZone \"15:04 MST\" 0 \"\" }}", Ok("00:00 UTC")),
        ("{{ htmlDateInZone 1700000000 \"UTC\" }}", Ok("2023-11-14")),
        ("{{ dateInZone \"2006-01-02 15:04:05.000 .999 ,000000 .9 MST\" (toDate \"2006-01-02 15:04:05.999999999Z07:00\" \"2024-02-29 23:59:58.12045Z\") \"UTC\" }}", Ok("2024-02-29 23:59:58.120 .12 ,120450 .1 UTC")),
        ("{{ toDate \"2006-01-02T15:04:05Z07:00\" \"2017-12-31T10:20:30Z\" }}", Ok("2017-12-31 10:20:30 +0000 UTC")),
        ("{{ toDate \"2006-01-02T15:04:05Z07:00\" \"2024-03-10T02:30:00-05:00\" | unixEpoch }}", Ok("1710055800")),
        ("{{ toDate \"02 Jan 06 15:04 -0700\" \"03 Feb 21 16:05 +0530\" | unixEpoch }}", Ok("1612348500")),
        ("{{ toDate \"2006-01-02 15:04:05 MST\" \"2024-07-01 10:00:00 UTC\" }}", Ok("2024-07-01 10:00:00 +0000 UTC")),
        ("{{ toDate \"2006-01-02 15:04 -07\" \"2024-07-01 10:00 +03\" | unixEpoch }}", Ok("1719817200")),
        ("{{ toDate \"x\" \"y\" | unixEpoch }}", Ok("-62135596800")),
        ("{{ toDate \"15:04 -07:00:00\" \"10:00 +05:30:15\" | unixEpoch }}|{{ toDate \"15:04 -070000\" \"10:00 -013015\" | unixEpoch }}|{{ toDate \"15:04 Z07:00:00\" \"10:00 Z\" | unixEpoch }}", Ok("-62167203015|-62167177785|-62167183200")),
        ("{{ toDate \"15:04 -07:00\" \"10:00 +€1:00\" | unixEpoch }}|{{ toDate \"15:04 -07:00:00\" \"10:00 +05:30\" | unixEpoch }}|{{ toDate \"15:04 -07\" \"10:00 +€\" | unixEpoch }}", Ok("-62135596800|-62135596800|-62135596800")),
        ("{{ toDate \"x\" \"y\" }}", Ok("0001-01-01 00:00:00 +0000 UTC")),
        ("{{ toDate \"2006-01-02T15:04:05Z07:00\" \"2017-12-31T00:00:00Z\" | toJson }}", Ok("\"2017-12-31T00:00:00Z\"")),
        ("{{ toDate \"2006-01-02 15:04:05.999Z07:00\" \"2017-12-31 10:00:00.25Z\" | toJson }}", Ok("\"2017-12-31T10:00:00.25Z\"")),
        ("{{ (toDate \"2006-01-02T15:04:05Z07:00\" \"2017-12-31T00:00:00Z\").Unix }}", Ok("1514678400")),
        ("{{ $t := toDate \"2006-01-02 15:04Z07:00\" \"2023-07-04 09:08Z\" }}{{ $t.Year }}|{{ $t.Month }}|{{ $t.Weekday }}|{{ $t.YearDay }}|{{ $t.UnixMilli }}|{{ $t.Day }}|{{ $t.Hour }}", Ok("2023|July|Tuesday|185|1688461680000|4|9")),
        ("{{ $t := toDate \"2006Z07:00\" \"2020Z\" }}{{ printf \"%v|%s|%T\" $t $t $t }}|{{ eq $t $t }}|{{ list $t }}|{{ dict \"t\" $t | toJson }}", Ok("2020-01-01 00:00:00 +0000 UTC|2020-01-01 00:00:00 +0000 UTC|time.Time|true|[2020-01-01 00:00:00 +0000 UTC]|{\"t\":\"2020-01-01T00:00:00Z\"}")),
        ("{{ toDate \"2006-01-02T15:04:05Z07:00\" \"2017-12-31T00:00:00Z\" | dateModify \"-1.5h\" }}", Ok("2017-12-30 22:30:00 +0000 UTC")),
        ("{{ toDate \"2006-01-02T15:04:05Z07:00\" \"2017-12-31T00:00:00Z\" | date_modify \"bogus\" }}", Ok("2017-12-31 00:00:00 +0000 UTC")),
        ("{{ dateModify \"1h30m15.5s\" (toDate \"2006Z07:00\" \"2020Z\") }}|{{ dateModify \"1.5us\" (toDate \"2006Z07:00\" \"2020Z\") }}|{{ dateModify \"-.5ms\" (toDate \"2006Z07:00\" \"2020Z\") }}|{{ dateModify \"1µs\" (toDate \"2006Z07:00\" \"2020Z\") }}|{{ dateModify \"3ns\" (toDate \"2006Z07:00\" \"2020Z\") }}", Ok("2020-01-01 01:30:15.5 +0000 UTC|2020-01-01 00:00:00.0000015 +0000 UTC|2019-12-31 23:59:59.9995 +0000 UTC|2020-01-01 00:00:00.000001 +0000 UTC|2020-01-01 00:00:00.000000003 +0000 UTC")),
        ("{{ mustDateModify \"bogus\" (toDate \"2006Z07:00\" \"2020Z\") }}", Err("template: :1:3: executing \"\" at <mustDateModify \"bogus\" (toDate \"2006Z07:00\" \"2020Z\")>: error calling mustDateModify: time: invalid duration \"bogus\"")),
        ("{{ mustDateModify \"1\" (toDate \"2006Z07:00\" \"2020Z\") }}", Err("template: :1:3: executing \"\" at <mustDateModify \"1\" (toDate \"2006Z07:00\" \"2020Z\")>: error calling mustDateModify: time: missing unit in duration \"1\"")),
        ("{{ mustDateModify \"1x\" (toDate \"2006Z07:00\" \"2020Z\") }}", Err("template: :1:3: executing \"\" at <mustDateModify \"1x\" (toDate \"2006Z07:00\" \"2020Z\")>: error calling mustDateModify: time: unknown unit \"x\" in duration \"1x\"")),
        ("{{ mustDateModify \"\" (toDate \"2006Z07:00\" \"2020Z\") }}", Err("template: :1:3: executing \"\" at <mustDateModify \"\" (toDate \"2006Z07:00\" \"2020Z\")>: error calling mustDateModify: time: invalid duration \"\"")),
        ("{{ mustDateModify \"9999999999h\" (toDate \"2006Z07:00\" \"2020Z\") }}", Err("template: :1:3: executing \"\" at <mustDateModify \"9999999999h\" (toDate \"2006Z07:00\" \"2020Z\")>: error calling mustDateModify: time: invalid duration \"9999999999h\"")),
        ("{{ mustToDate \"2006-01-02\" \"2017-13-31\" }}", Err("template: :1:3: executing \"\" at <mustToDate \"2006-01-02\" \"2017-13-31\">: error calling mustToDate: parsing time \"2017-13-31\": month out of range")),
        ("{{ mustToDate \"2006-01-02\" \"2017-02-30\" }}", Err("template: :1:3: executing \"\" at <mustToDate \"2006-01-02\" \"2017-02-30\">: error calling mustToDate: parsing time \"2017-02-30\": day out of range")),
        ("{{ mustToDate \"2006-01-02\" \"2017-02-03x\" }}", Err("template: :1:3: executing \"\" at <mustToDate \"2006-01-02\" \"2017-02-03x\">: error calling mustToDate: parsing time \"2017-02-03x\": extra text: \"x\"")),
        ("{{ mustToDate \"2006-01-02 15:04\" \"2017-02-03 25:00\" }}", Err("template: :1:3: executing \"\" at <mustToDate \"2006-01-02 15:04\" \"2017-02-03 25:00\">: error calling mustToDate: parsing time \"2017-02-03 25:00\": hour out of range")),
        ("{{ mustToDate \"2006-01-02 Jan\" \"2017-02-03 Foo\" }}", Err("template: :1:3: executing \"\" at <mustToDate \"2006-01-02 Jan\" \"2017-02-03 Foo\">: error calling mustToDate: parsing time \"2017-02-03 Foo\" as \"2006-01-02 Jan\": cannot parse \"Foo\" as \"Jan\"")),
        ("{{ duration \"95\" }}|{{ duration \"3600\" }}|{{ duration \"90061\" }}|{{ duration \"0\" }}|{{ duration \"-5\" }}|{{ duration \"abc\" }}|{{ duration (int64 95) }}|{{ duration 1.5 }}", Ok("1m35s|1h0m0s|25h1m1s|0s|-5s|0s|1m35s|0s")),
        ("{{ durationRound \"2h10m5s\" }}|{{ durationRound \"2400h10m5s\" }}|{{ durationRound \"-3h\" }}|{{ durationRound \"1s\" }}|{{ durationRound \"1.5s\" }}|{{ durationRound \"bad\" }}|{{ durationRound (int64 90000000000) }}|{{ durationRound \"9000h\" }}|{{ durationRound \"25h\" }}|{{ durationRound \"61s\" }}", Ok("2h|3mo|3h|0s|1s|0s|1m|1y|1d|1m")),
        ("{{ uuidv4 | len }}|{{ regexMatch \"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$\" uuidv4 }}", Ok("36|true")),
        ("{{ sha1sum \"Hello world!\" }}|{{ sha256sum \"Hello world!\" }}|{{ adler32sum \"Hello world!\" }}|{{ sha512sum \"abc\" }}|{{ sha1sum \"\" }}|{{ adler32sum \"\" }}", Ok("d3486ae9136e7856bc42212385ea797094475802|c0535e4be2b79ffd93291305436bf889314e4a3faec05ecffcbb7df31ad9e51a|487130206|ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f|da39a3ee5e6b4b0d3255bfef95601890afd80709|1")),
        ("{{ b32enc \"Hello World\" }}|{{ b32dec \"JBSWY3DPEBLW64TMMQ======\" }}|{{ b32dec \"JB!\" }}|{{ b32enc \"\" }}|{{ b32enc \"f\" }}|{{ b32enc \"fo\" }}|{{ b32enc \"foo\" }}|{{ b32enc \"foob\" }}|{{ b32enc \"fooba\" }}", Ok("JBSWY3DPEBLW64TMMQ======|Hello World|illegal base32 data at input byte 2||MY======|MZXQ====|MZXW6===|MZXW6YQ=|MZXW6YTB")),
        ("{{ b32dec \"MZXW6YQ=\" }}|{{ b32dec \"MZXW6===\" }}|{{ b32dec \"MZXQ====\" }}|{{ b32dec \"MY======\" }}|{{ b32dec \"MZXW6YQ\" }}|{{ b32dec \"M=======\" }}|{{ b32dec \"MZX=====\" }}|{{ b32dec \"MZXW6YQ=X\" }}|{{ b32dec \"MZ\\nXW6YQ=\" }}|{{ b32dec \"mzxw6yq=\" }}|{{ b32dec \"MY=====\" }}|{{ b32dec \"MY==x===\" }}", Ok("foob|foo|fo|f|illegal base32 data at input byte 0|illegal base32 data at input byte 1|illegal base32 data at input byte 3|foob|foob|illegal base32 data at input byte 0|illegal base32 data at input byte 7|illegal base32 data at input byte 3")),
        ("{{ \"Hello World\" | snakecase }}|{{ \"HelloWorld\" | snakecase }}|{{ \"HTTPServer\" | snakecase }}|{{ \"FirstName\" | kebabcase }}|{{ \"hello_world\" | camelcase }}|{{ \"hello world\" | camelcase }}", Ok("hello_world|hello_world|http_server|first-name|HelloWorld|HelloWorld")),
        ("{{ snakecase \"ThisIsATest\" }}|{{ snakecase \"HTTPServerError\" }}|{{ snakecase \"already_snake\" }}|{{ snakecase \"With Spaces here\" }}|{{ snakecase \"version2Update\" }}|{{ snakecase \"ID42abc\" }}|{{ snakecase \"a.b-c__d\" }}|{{ snakecase \"\" }}|{{ snakecase \"ÀpropÖs\" }}|{{ snakecase \"foo123Bar\" }}|{{ snakecase \"Foo 123 Bar\" }}|{{ snakecase \"abc$def\" }}", Ok("this_is_a_test|http_server_error|already_snake|with_spaces_here|version2_update|id_42abc|a.b_c__d||àprop_ös|foo123_bar|foo_123_bar|abc_$_def")),
        ("{{ snakecase \"XMLHttpRequest2Go\" }}|{{ snakecase \"a_B_c\" }}|{{ snakecase \"__a__\" }}|{{ snakecase \"ab12CD34ef\" }}|{{ kebabcase \"TestV2X\" }}|{{ snakecase \"a1\" }}|{{ snakecase \"1a\" }}|{{ snakecase \"A\" }}|{{ snakecase \"1\" }}|{{ snakecase \"-\" }}", Ok("xml_http_request2_go|a_b_c|__a__|ab12_cd_34ef|test-v2-x|a1|1a|a|1|_")),
        ("{{ kebabcase \"ThisIsATest\" }}|{{ kebabcase \"HTTPServerError\" }}|{{ kebabcase \"many   spaces--and__things\" }}|{{ kebabcase \"X\" }}|{{ kebabcase \"aB\" }}|{{ kebabcase \"A1B2\" }}|{{ kebabcase \"1A2B\" }}|{{ kebabcase \"GL11Version\" }}|{{ kebabcase \"hello!World\" }}|{{ kebabcase \"  lead\" }}|{{ kebabcase \"trail  \" }}", Ok("this-is-a-test|http-server-error|many---spaces--and--things|x|a-b|a1-b2|1-a2-b|gl11-version|hello!world|--lead|trail--")),
        ("{{ camelcase \"http_server\" }}|{{ camelcase \"_my_field_name\" }}|{{ camelcase \"HELLO_WORLD\" }}|{{ camelcase \"hello  world\" }}|{{ camelcase \"a\" }}|{{ camelcase \"__\" }}|{{ camelcase \"xml_HTTP_request\" }}|{{ camelcase \"some-kebab-case\" }}|{{ camelcase \"éte_été\" }}|{{ camelcase \"trailing_\" }}|{{ camelcase \"\" }}", Ok("HttpServer|_MyFieldName|HelloWorld|Hello World|A|___|XmlHttpRequest|SomeKebabCase|ÉteÉté|Trailing_|")),
        ("{{ swapcase \"This Is A.Test\" }}|{{ swapcase \"hELLO wORLD 123 ß\" }}|{{ untitle \"Hello World\" }}|{{ untitle \"HELLO  WORLD\" }}|{{ initials \"Hello World\" }}|{{ initials \" x  y\" }}|{{ initials \"élan vital\" }}", Ok("tHIS iS a.tEST|Hello World 123 ß|hello world|hELLO  wORLD|HW|xy|Ãv")),
        ("{{ nospace \"  h e l l o  \" }}|{{ nospace \"a\\tb\\nc d\" }}|{{ nospace \"héllo wörld\" }}|{{ nospace \"abc\" }}", Ok("hello|abcd|hÃ©llowÃ¶rld|abc")),
        ("{{ abbrev 5 \"hello world\" }}|{{ abbrev 3 \"hello world\" }}|{{ abbrev 20 \"hello world\" }}|{{ abbrevboth 5 10 \"1234 5678 9123\" }}|{{ abbrevboth 2 6 \"1234 5678 9123\" }}|{{ abbrevboth 0 4 \"1234 5678 9123\" }}|{{ abbrevboth 10 10 \"abcdefghijklmno\" }}|{{ abbrevboth 20 7 \"abcdefghijklmno\" }}|{{ abbrev 6 \"héllo wörld\" }}", Ok("he...|hello world|hello world|...5678...|1234 5678 9123|1...|...ijklmno|...lmno|hé...")),
        ("{{ wrap 5 \"Hello World how are you\" }}|{{ wrap 80 \"short\" }}|{{ wrap 10 \"The quick brown fox jumps over the lazy dog\" }}|{{ wrap 3 \"abcdefgh ij\" }}|{{ wrapWith 5 \"\\t\" \"Hello World\" }}|{{ wrapWith 3 \"|\" \"abcdefgh ij\" }}|{{ wrap 0 \"a b\" }}|{{ wrap 5 \"  lead space words\" }}|{{ wrap 4 \"héllo wörld\" }}", Ok("Hello\nWorld\nhow\nare\nyou|short|The quick\nbrown fox\njumps over\nthe lazy\ndog|abcdefgh\nij|Hello\tWorld|abc|def|gh|ij|a\nb|lead\nspace\nwords|héllo\nwörld")),
        ("{{ indent 4 \"a\\nb\" }}|{{ nindent 2 \"x\" }}|{{ indent 2 \"a\\n\\nb\" }}|{{ nindent 0 \"x\" }}|{{ plural \"one\" \"many\" 1 }}|{{ plural \"one\" \"many\" 2 }}|{{ plural \"child\" \"children\" 0 }}", Ok("    a\n    b|\n  x|  a\n  \n  b|\nx|one|many|children")),
        ("{{ indent -1 \"x\" }}", Err("template: :1:3: executing \"\" at <indent -1 \"x\">: error calling indent: strings: negative Repeat count")),
        ("{{ cat \"hello\" \"beautiful\" nil \"world\" 3 }}|{{ cat }}|{{ cat 1 2.5 \"x\" (list 1 2) true }}|{{ trimall \"$\" \"$5.00$\" }}", Ok("hello beautiful world 3||1 2.5 x [1 2] true|5.00")),
        ("{{ list 1 2 3 | toStrings }}|{{ splitList \"$\" \"foo$bar$baz\" }}|{{ splitn \"$\" 2 \"foo$bar$baz\" }}|{{ splitList \"\" \"abc\" }}|{{ splitList \",\" \"\" }}|{{ splitn \",\" 0 \"a,b\" }}|{{ splitn \",\" -1 \"a,b,c\" }}|{{ splitn \"\" 2 \"abc\" }}|{{ (splitn \",\" 2 \"a,b,c\")._1 }}", Ok("[1 2 3]|[foo bar baz]|map[_0:foo _1:bar$baz]|[a b c]|[]|map[]|map[_0:a _1:b _2:c]|map[_0:a _1:bc]|b,c")),
        ("{{ toStrings (list 1 nil \"x\" 2.5) }}|{{ toStrings \"abc\" }}|{{ toStrings nil }}|{{ sortAlpha (list \"b\" \"a\" \"C\" 3) }}|{{ sortAlpha \"z\" }}|{{ toStrings (list 1 2) | join \"-\" }}", Ok("[1 x 2.5]|[abc]|[]|[3 C a b]|[z]|1-2")),
        ("{{ regexFindAll \"[0-9]+\" \"a1b22c333\" -1 }}|{{ regexFindAll \"[0-9]+\" \"a1b22c333\" 2 }}|{{ regexFindAll \"[0-9]+\" \"a1b22c333\" 0 }}|{{ regexFindAll \"a*\" \"baaab\" -1 }}|{{ regexSplit \"z+\" \"pizza\" -1 }}|{{ regexSplit \"z+\" \"pizza\" 1 }}|{{ regexSplit \"\" \"abc\" -1 }}|{{ regexSplit \"a\" \"\" -1 }}|{{ regexSplit \"x*\" \"axbxc\" -1 }}|{{ regexSplit \",\" \"a,b,c\" 2 }}", Ok("[1 22 333]|[1 22]|[]|[ aaa ]|[pi a]|[pizza]|[a b c]|[]|[a b c]|[a b,c]")),
        ("{{ regexReplaceAllLiteral \"a(x*)b\" \"-ab-axxb-\" \"${1}\" }}|{{ regexQuoteMeta \"1.5-2.0?[x]{y}^$|\\\\\" }}|{{ mustRegexMatch \"^a\" \"abc\" }}|{{ mustRegexFind \"b+\" \"abbc\" }}|{{ mustRegexReplaceAll \"b\" \"abc\" \"X\" }}|{{ mustRegexFindAll \".\" \"ab\" -1 }}|{{ mustRegexSplit \",\" \"a,b\" -1 }}|{{ mustRegexReplaceAllLiteral \"b\" \"abc\" \"$1\" }}", Ok("-${1}-${1}-|1\\.5-2\\.0\\?\\[x\\]\\{y\\}\\^\\$\\|\\\\|true|bb|aXc|[a b]|[a b]|a$1c")),
        ("{{ list 1 2 3 | first }}|{{ list 1 2 3 | last }}|{{ list 1 2 3 | rest }}|{{ list 1 2 3 | initial }}|{{ list | first }}|{{ list | rest }}|{{ list 1 2 | append 3 }}|{{ list 1 2 | push 3 }}|{{ list 1 2 | prepend 0 }}", Err("template: :1:151: executing \"\" at <append 3>: error calling append: Cannot push on type int")),
        ("{{ concat (list 1 2) (list 3) (list) }}|{{ list 1 2 3 | reverse }}|{{ list 1 1 2 \"a\" \"a\" 1.0 | uniq }}|{{ without (list 1 2 3 2) 2 }}|{{ has 2 (list 1 2) }}|{{ has \"2\" (list 1 2) }}|{{ has 1 nil }}", Ok("[1 2 3]|[3 2 1]|[1 2 a 1]|[1 3]|true|false|false")),
        ("{{ compact (list 1 0 \"\" \"a\" nil false true (list) (dict)) }}|{{ chunk 2 (list 1 2 3 4 5) }}|{{ until 5 }}|{{ until -3 }}|{{ untilStep 3 6 2 }}|{{ untilStep 10 0 -3 }}|{{ untilStep 0 5 0 }}", Ok("[1 a true]|[[1 2] [3 4] [5]]|[0 1 2 3 4]|[0 -1 -2]|[3 5]|[10 7 4 1]|[]")),
        ("{{ seq 5 }}|{{ seq -3 }}|{{ seq 0 }}|{{ seq 2 5 }}|{{ seq 5 2 }}|{{ seq 0 2 10 }}|{{ seq 10 -2 0 }}|{{ seq 10 2 0 }}|{{ seq }}|{{ seq 1 2 3 4 }}", Ok("1 2 3 4 5|1 0 -1 -2 -3|1 0|2 3 4 5|5 4 3 2|0 2 4 6 8 10|10 8 6 4 2 0|||")),
        ("{{ first \"abc\" }}", Err("template: :1:3: executing \"\" at <first \"abc\">: error calling first: Cannot find first on type string")),
        ("{{ concat (list 1) \"x\" }}", Err("template: :1:3: executing \"\" at <concat (list 1) \"x\">: error calling concat: Cannot concat type string as list")),
        ("{{ first nil }}", Err("template: :1:3: executing \"\" at <first nil>: error calling first: runtime error: invalid memory address or nil pointer dereference")),
        ("{{ mustFirst 5 }}", Err("template: :1:3: executing \"\" at <mustFirst 5>: error calling mustFirst: Cannot find first on type int")),
        ("{{ tuple 1 \"a\" }}|{{ list 1 2 | mustAppend 3 }}|{{ mustLast (list) }}|{{ mustUniq (list 1 1) }}|{{ mustHas 1 (list 1) }}|{{ mustCompact (list 0 1) }}|{{ mustReverse (list 1 2) }}|{{ mustWithout (list 1 2) 1 }}|{{ mustPrepend (list 1) 0 }}|{{ mustRest (list 1 2) }}|{{ mustInitial (list 1 2) }}|{{ mustChunk 1 (list 1 2) }}", Err("template: :1:32: executing \"\" at <mustAppend 3>: error calling mustAppend: Cannot push on type int")),
        ("{{ $d := dict \"a\" 1 \"b\" \"two\" \"c\" }}{{ $d }}|{{ get $d \"a\" }}|{{ get $d \"zz\" }}|{{ $_ := set $d \"z\" 26 }}{{ $d }}|{{ $_ := unset $d \"a\" }}{{ $d }}|{{ hasKey $d \"b\" }}|{{ keys $d | sortAlpha }}", Ok("map[a:1 b:two c:]|1||map[a:1 b:two c: z:26]|map[b:two c: z:26]|true|[b c z]")),
        ("{{ $a := dict \"x\" 1 \"y\" 2 }}{{ $b := dict \"x\" 3 \"w\" 4 }}{{ pluck \"x\" $a $b }}|{{ pick $a \"x\" \"q\" }}|{{ omit $a \"x\" }}|{{ dict 1 2 nil 3 }}|{{ dict }}|{{ dict \"a\" (dict \"b\" 1) | toJson }}", Ok("[1 3]|map[x:1]|map[y:2]|map[1:2 <nil>:3]|map[]|{\"a\":{\"b\":1}}")),
        ("{{ $dst := dict \"a\" 1 \"e\" \"\" \"n\" (dict \"x\" 1) }}{{ $src := dict \"a\" 2 \"e\" \"filled\" \"b\" 3 \"n\" (dict \"x\" 2 \"y\" 3) }}{{ merge $dst $src | toJson }}|{{ $dst | toJson }}", Ok("{\"a\":1,\"b\":3,\"e\":\"filled\",\"n\":{\"x\":1,\"y\":3}}|{\"a\":1,\"b\":3,\"e\":\"filled\",\"n\":{\"x\":1,\"y\":3}}")),
        ("{{ $dst := dict \"default\" \"default\" \"overwrite\" \"me\" \"key\" true }}{{ $src := dict \"overwrite\" \"overwritten\" \"key\" false }}{{ mergeOverwrite $dst $src | toJson }}", Ok("{\"default\":\"default\",\"key\":false,\"overwrite\":\"overwritten\"}")),
        ("{{ $d := dict \"a\" (dict \"b\" (dict \"c\" 1)) }}{{ dig \"a\" \"b\" \"c\" \"dflt\" $d }}|{{ dig \"a\" \"x\" \"c\" \"dflt\" $d }}|{{ dig \"a\" \"dflt\" $d }}", Ok("1|dflt|map[b:map[c:1]]")),
        ("{{ $d := dict \"a\" (dict \"b\" 1) }}{{ $c := deepCopy $d }}{{ $_ := set $c \"z\" 1 }}{{ $d }}|{{ $c }}", Ok("map[a:map[b:1]]|map[a:map[b:1] z:1]")),
        ("{{ fromJson \"{\\\"a\\\":1,\\\"b\\\":[1,2.5,\\\"x\\\",null,true],\\\"c\\\":{\\\"d\\\":1000000}}\" }}|{{ (fromJson \"{\\\"a\\\":1}\").a }}|{{ fromJson \"bad\" }}|{{ fromJson \"[1,2]\" | toJson }}", Ok("map[a:1 b:[1 2.5 x <nil> true] c:map[d:1e+06]]|1|<no value>|[1,2]")),
        ("{{ mustFromJson \"\" }}", Err("template: :1:3: executing \"\" at <mustFromJson \"\">: error calling mustFromJson: unexpected end of JSON input")),
        ("{{ dict \"b\" \"<x>&\" \"a\" (list 1 2) \"c\" (dict) \"d\" (list) | toPrettyJson }}|{{ dict \"b\" \"<x>&\" | toRawJson }}|{{ dict \"b\" \"<x>&\" | toJson }}|{{ list | toPrettyJson }}|{{ 1.5 | toPrettyJson }}|{{ \"a\\\\u003cb<\" | toRawJson }}", Ok("{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": \"\\u003cx\\u003e\\u0026\",\n  \"c\": {},\n  \"d\": []\n}|{\"b\":\"<x>&\"}|{\"b\":\"\\u003cx\\u003e\\u0026\"}|[]|1.5|\"a\\\\u003cb<\"")),
        ("{{ mustToJson (list 1) }}|{{ mustToPrettyJson (dict \"a\" 1) }}|{{ mustToRawJson \"<\" }}", Ok("[1]|{\n  \"a\": 1\n}|\"<\"")),
        ("{{ add1 5 }}|{{ add1 \"7\" }}|{{ add1f 1.5 }}|{{ addf 1.1 2.2 }}|{{ addf }}|{{ subf 1.1 0.3 }}|{{ mulf 1.1 3 }}|{{ divf 1 3 }}|{{ divf 2 3 }}|{{ divf 1 30000 }}|{{ divf 10 4 }}|{{ mulf 0.1 0.2 0.3 }}|{{ subf 5 }}", Ok("6|8|2.5|3.3|0|0.8|3.3|0.3333333333333333|0.6666666666666667|3.33333333333e-05|2.5|0.006|5")),
        ("{{ divf 1 0 }}", Err("template: :1:3: executing \"\" at <divf 1 0>: error calling divf: decimal division by 0")),
        ("{{ biggest 1 5 3 }}|{{ maxf 1 2.5 }}|{{ minf 1 2.5 -3 }}|{{ maxf 1 }}|{{ floor 1.7 }}|{{ ceil 1.2 }}|{{ floor \"2.5\" }}|{{ round 3.14159 2 }}|{{ round 2.5 0 }}|{{ round -2.5 0 }}|{{ round 1.2345 3 0.4 }}|{{ round 123.456 -1 }}", Ok("5|2.5|-3|1|1|2|2|3.14|3|-3|1.235|120")),
        ("{{ toDecimal \"0777\" }}|{{ toDecimal 777 }}|{{ toDecimal \"9\" }}|{{ toDecimal 1.5 }}|{{ toDecimal \"-17\" }}", Ok("511|511|0|0|-15")),
        ("{{ all 1 \"a\" true }}|{{ all 1 \"\" }}|{{ any 0 \"\" nil }}|{{ any 0 \"x\" }}|{{ all }}|{{ any }}", Ok("true|false|false|true|true|false")),
        ("{{ fail \"boom\" }}", Err("template: :1:3: executing \"\" at <fail \"boom\">: error calling fail: boom")),
        ("{{ expandenv \"$ ${} $$x ${\" }}|{{ env \"SURELY_NOT_SET_X\" }}|{{ expandenv \"a${SURELY_NOT_SET_X}b$SURELY_NOT_SET_X.c\" }}", Ok("$  x ||ab.c")),

    ]);
}

#[test]
fn time_zones_from_zoneinfo_match_go() {
    if !has_zoneinfo() {
        eprintln!("no zoneinfo database; skipped");
        return;
    }
    check_ok(&[
        ("{{ dateInZone \"2006-01-02 15:04:05 MST -07:00 Z0700 -07 Z07:00:00 -070000\" 1700000000 \"America/New_York\" }}|{{ dateInZone \"2006-01-02 15:04 MST\" 1690000000 \"America/New_York\" }}", "2023-11-14 17:13:20 EST -05:00 -0500 -05 -05:00:00 -050000|2023-07-22 00:26 EDT"),
        ("{{ dateInZone \"Monday Mon Jan January 1 01 2 02 _2 __2 002 15 3 03 4 04 5 05 06 2006 PM pm MST\" 1700000000 \"Asia/Kolkata\" }}", "Wednesday Wed Nov November 11 11 15 15 15 319 319 03 3 03 43 43 20 20 23 2023 AM am IST"),
        ("{{ dateInZone \"2006-01-02 15:04 MST\" 4102444800 \"Europe/London\" }}|{{ dateInZone \"2006-01-02 15:04 MST\" 4118000000 \"Europe/London\" }}|{{ htmlDateInZone 1700000000 \"Pacific/Kiritimati\" }}|{{ dateInZone \"2006-01-02 MST\" 1700000000 \"Etc/GMT+5\" }}", "2100-01-01 00:00 GMT|2100-06-30 01:53 BST|2023-11-15|2023-11-14 -05"),
        ("{{ $t := toDate \"2006-01-02T15:04:05.999999999Z07:00\" \"2024-03-10T06:59:59.5Z\" }}{{ dateInZone \"2006-01-02 15:04:05.0 MST\" $t \"America/Los_Angeles\" }}|{{ dateInZone \"2006-01-02 15:04:05 MST\" ($t | dateModify \"1s\") \"America/New_York\" }}|{{ dateInZone \"2006-01-02 15:04:05 MST\" ($t | dateModify \"3h\") \"America/New_York\" }}", "2024-03-09 22:59:59.5 PST|2024-03-10 03:00:00 EDT|2024-03-10 05:59:59 EDT"),
        ("{{ dateInZone \"2006-01-02 15:04 MST\" (toDate \"2006-01-02T15:04:05Z07:00\" \"2024-11-03T05:30:00Z\") \"America/New_York\" }}|{{ dateInZone \"2006-01-02 15:04 MST\" (toDate \"2006-01-02T15:04:05Z07:00\" \"2024-11-03T06:30:00Z\") \"America/New_York\" }}|{{ dateInZone \"2006-01-02 15:04 MST\" 2000000000 \"America/Sao_Paulo\" }}|{{ dateInZone \"2006-01-02 15:04 MST\" -2000000000 \"America/New_York\" }}", "2024-11-03 01:30 EDT|2024-11-03 01:30 EST|2033-05-18 00:33 -03|1906-08-16 15:26 EST"),
        ("{{ dateInZone \"2006-01-02 15:04 MST\" 1700000000 \"Africa/Casablanca\" }}|{{ dateInZone \"2006-01-02 15:04:05 MST\" 1700000000 \"Australia/Lord_Howe\" }}|{{ dateInZone \"2006-01-02 15:04:05 -07:00:00 MST\" -2500000000 \"Europe/Amsterdam\" }}", "2023-11-14 23:13 +01|2023-11-15 09:13:20 +11|1890-10-11 19:52:52 +00:19:32 AMT"),
    ]);
}

#[test]
fn local_zone_functions_match_go_in_utc() {
    if !local_is_utc() {
        eprintln!("the server's zone is not UTC; skipped");
        return;
    }
    check_ok(&[
        ("{{ 1700000000 | date \"2006-01-02T15:04:05Z07:00\" }}|{{ date \"Mon Jan _2 15:04:05 MST 2006\" 1700000000 }}|{{ htmlDate 1700000000 }}|{{ dateInZone \"15:04 MST\" 0 \"Local\" }}", "2023-11-14T22:13:20Z|Tue Nov 14 22:13:20 UTC 2023|2023-11-14|00:00 UTC"),
        ("{{ toDate \"2006-01-02\" \"2017-12-31\" }}|{{ toDate \"2006-01-02 15:04:05 MST\" \"2024-03-10 02:30:00 EST\" }}|{{ toDate \"2006-01-02\" \"2017-13-31\" }}|{{ toDate \"15:04\" \"10:30\" }}|{{ toDate \"2006-002\" \"2024-060\" }}", "2017-12-31 00:00:00 +0000 UTC|2024-03-10 02:30:00 +0000 EST|0001-01-01 00:00:00 +0000 UTC|0000-01-01 10:30:00 +0000 UTC|2024-02-29 00:00:00 +0000 UTC"),
        ("{{ toDate \"Jan _2 2006 3:04PM\" \"Feb  3 2021 4:05PM\" }}|{{ toDate \"2006-01-02 15:04:05\" \"2024-01-01 12:00:00.5\" }}|{{ toDate \"2006-01-02 15:04:05.000\" \"2024-01-01 12:00:00.123\" }}|{{ toDate \"2006-01-02 15:04:05,999\" \"2024-01-01 12:00:00,1234567891\" }}|{{ toDate \"Jan 2\" \"feb 29\" }}|{{ toDate \"2006 Jan 2\" \"2023 feb 29\" }}", "2021-02-03 16:05:00 +0000 UTC|2024-01-01 12:00:00.5 +0000 UTC|2024-01-01 12:00:00.123 +0000 UTC|2024-01-01 12:00:00.123456789 +0000 UTC|0000-02-29 00:00:00 +0000 UTC|0001-01-01 00:00:00 +0000 UTC"),
        ("{{ toDate \"2006-01-02 15:04:05 MST\" \"2024-07-01 10:00:00 PDT\" }}|{{ toDate \"2006-01-02 15:04:05 MST\" \"2024-07-01 10:00:00 GMT+3\" }}|{{ toDate \"2006-01-02 15:04 -07\" \"2024-07-01 10:00 +03\" }}|{{ toDate \"Mon 2006\" \"Tue 2024\" }}|{{ toDate \"3:04pm\" \"12:30am\" }}", "2024-07-01 10:00:00 +0000 PDT|2024-07-01 13:00:00 +0300 GMT+3|2024-07-01 10:00:00 +0300 +0300|2024-01-01 00:00:00 +0000 UTC|0000-01-01 00:30:00 +0000 UTC"),
    ]);
}

#[test]
fn date_uses_the_local_zone_like_date_in_zone_local() {
    for text in [
        "{{ date \"2006-01-02 15:04:05 MST -0700\" 1700000000 }}",
        "{{ htmlDate 1700000000 }}",
    ] {
        let local = text
            .replace("date \"", "dateInZone \"")
            .replace("1700000000 }}", "1700000000 \"Local\" }}")
            .replace(
                "htmlDate 1700000000 \"Local\"",
                "htmlDateInZone 1700000000 \"Local\"",
            );
        assert_eq!(go_render(text), go_render(&local), "{text} vs {local}");
    }
}

#[test]
fn now_and_ago_have_go_shapes() {
    // `now` prints like Go's Time.String, with the monotonic clock reading.
    let shown = go_render("{{ now }}").unwrap_or_default();
    let shape =
        Regex::new(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,9})? [+-]\d{4} \S+ m=\+\d+\.\d{9}$")
            .ok();
    assert!(shape.is_some_and(|re| re.is_match(&shown)), "{shown}");
    assert_eq!(
        go_render("{{ now | dateModify \"-2h\" | ago }}").as_deref(),
        Ok("2h0m0s")
    );
    assert_eq!(go_render("{{ ago \"x\" }}").as_deref(), Ok("0s"));
    let year: i64 = go_render("{{ (now).Year }}")
        .ok()
        .and_then(|y| y.parse().ok())
        .unwrap_or(0);
    assert!(year >= 2024, "{year}");
    let epoch: i64 = go_render("{{ now | unixEpoch }}")
        .ok()
        .and_then(|y| y.parse().ok())
        .unwrap_or(0);
    assert!(epoch > 1_700_000_000, "{epoch}");
    assert_eq!(
        go_render("{{ now | date \"2006\" | len }}").as_deref(),
        Ok("4")
    );
    assert_eq!(go_render("{{ (now).IsZero }}").as_deref(), Ok("false"));
    assert_eq!(
        go_render("{{ (toDate \"x\" \"y\").IsZero }}").as_deref(),
        Ok("true")
    );
}

#[test]
fn env_reads_the_server_environment() {
    // Cargo sets CARGO_PKG_NAME for the test process.
    assert_eq!(
        go_render("{{ env \"CARGO_PKG_NAME\" }}").as_deref(),
        Ok("culvert-template")
    );
    assert_eq!(
        go_render("{{ expandenv \"pkg=$CARGO_PKG_NAME/${CARGO_PKG_NAME}\" }}").as_deref(),
        Ok("pkg=culvert-template/culvert-template")
    );
}

#[test]
fn env_never_shows_the_servers_own_settings() {
    use crate::sprig::server_setting;
    for name in ["CULVERT_SECRETS_KEY", "culvert_api_auth_token", "Culvert_X"] {
        assert!(server_setting(name), "{name}");
    }
    for name in ["CULVERT", "HOME", "MY_CULVERT_X", "CULVERTX"] {
        assert!(!server_setting(name), "{name}");
    }
    // Set or not, a server setting reads as unset.
    assert_eq!(crate::sprig::getenv("CULVERT_SECRETS_KEY"), "");
}

#[test]
fn set_changes_a_dict_in_place_but_not_the_record() {
    let t = Template::parse(
        "{{ $_ := set .Payload.After \"name\" \"bob\" }}{{ .Payload.After.name }}|{{ $d := dict }}{{ $_ := set $d \"k\" 1 }}{{ $d.k }}",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.render(&tests::record()).as_deref(), Ok("alice|1"));
}

#[test]
fn list_functions_take_record_data() {
    let t = Template::parse(
        "{{ first .Payload.After.list }}|{{ last .Payload.After.list }}|{{ has \"x\" .Payload.After.list }}|{{ .Payload.After.list | compact | len }}|{{ first .Payload.Before }}|{{ merge (dict \"name\" \"\") .Payload.After | keys | len }}",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        t.render(&tests::record()).as_deref(),
        Ok("1|true|true|4|104|15")
    );
}

#[test]
fn durations_format_and_parse_like_go() {
    for (nanos, text) in [
        (0, "0s"),
        (1, "1ns"),
        (1_100, "1.1µs"),
        (2_200_000, "2.2ms"),
        (3_300_000_000, "3.3s"),
        (-4_000_000_000, "-4s"),
        (4_000_000_000 * 60 + 500_000_000, "4m0.5s"),
        (5 * 3_600_000_000_000, "5h0m0s"),
        (i64::MIN, "-2562047h47m16.854775808s"),
        (i64::MAX, "2562047h47m16.854775807s"),
    ] {
        assert_eq!(format_duration(nanos), text);
        assert_eq!(parse_duration(text), Ok(nanos), "{text}");
    }
    assert_eq!(parse_duration("1.5h"), Ok(5_400_000_000_000));
    assert_eq!(parse_duration("+.5s"), Ok(500_000_000));
    assert_eq!(parse_duration("0"), Ok(0));
    assert!(parse_duration("9223372036854775808ns").is_err());
    assert_eq!(parse_duration("-9223372036854775808ns"), Ok(i64::MIN));
}

#[test]
fn time_zone_rules_beyond_the_last_transition_match_go() {
    if !has_zoneinfo() {
        eprintln!("no zoneinfo database; skipped");
        return;
    }
    // New York's POSIX TZ rule (EST5EDT,M3.2.0,M11.1.0) past the file's last transition:
    // winter and summer of 2200, its spring change (2200-03-09 07:00 UTC), and a summer
    // and winter far beyond the year 9999.
    check_ok(&[
        ("{{ dateInZone \"2006-01-02 15:04:05 MST -0700\" 7259371200 \"America/New_York\" }}|{{ dateInZone \"2006-01-02 15:04:05 MST\" 7274073600 \"America/New_York\" }}", "2200-01-15 07:00:00 EST -0500|2200-07-04 12:00:00 EDT"),
        ("{{ dateInZone \"2006-01-02 15:04:05 MST\" 7263932399 \"America/New_York\" }}|{{ dateInZone \"2006-01-02 15:04:05 MST\" 7263932400 \"America/New_York\" }}", "2200-03-09 01:59:59 EST|2200-03-09 03:00:00 EDT"),
        ("{{ dateInZone \"2006-01-02 15:04 MST\" 316532246400 \"America/New_York\" }}|{{ dateInZone \"2006-01-02 15:04 MST\" 316516525200 \"America/New_York\" }}", "12000-07-04 12:00 EDT|12000-01-04 12:00 EST"),
    ]);
}

#[test]
fn wall_clocks_and_abbreviations_resolve_in_a_zone_like_go() {
    let Ok(ny) = load_location("America/New_York") else {
        eprintln!("no zoneinfo database; skipped");
        return;
    };
    let layout = "2006-01-02 15:04:05 MST";
    let parse = |value: &str, with: &str| {
        parse_time(with, value, &ny).map(|t| format_time(&t, "2006-01-02 15:04:05 MST -0700"))
    };
    let cases = [
        // A wall clock in the spring gap, in the autumn overlap, and on either side.
        ("2024-03-10 02:30:00", "2006-01-02 15:04:05"),
        ("2024-03-10 01:59:59", "2006-01-02 15:04:05"),
        ("2024-11-03 01:30:00", "2006-01-02 15:04:05"),
        ("2024-11-03 02:00:00", "2006-01-02 15:04:05"),
        ("2200-07-04 12:00:00", "2006-01-02 15:04:05"),
        // Abbreviations the zone uses (in and out of their season) and one it does not.
        ("2024-07-01 10:00:00 EDT", layout),
        ("2024-01-01 10:00:00 EDT", layout),
        ("2024-01-01 10:00:00 EST", layout),
        ("2024-07-01 10:00:00 EST", layout),
        ("1900-01-01 10:00:00 LMT", layout),
        ("2024-07-01 10:00:00 PDT", layout),
    ];
    let got: Vec<String> = cases
        .iter()
        .map(|(value, with)| parse(value, with).unwrap_or_else(|e| e))
        .collect();
    assert_eq!(got, WALL_CLOCKS_IN_NEW_YORK, "{got:#?}");
    assert_eq!(
        load_location("america/new_york").err().as_deref(),
        Some("unknown time zone america/new_york")
    );
}

/// What Go's `time.ParseInLocation` gives for the cases above (Go's offset resolution:
/// a time in the spring gap moves back an hour, one in the autumn overlap is the first).
const WALL_CLOCKS_IN_NEW_YORK: [&str; 11] = [
    "2024-03-10 01:30:00 EST -0500",
    "2024-03-10 01:59:59 EST -0500",
    "2024-11-03 01:30:00 EDT -0400",
    "2024-11-03 02:00:00 EST -0500",
    "2200-07-04 12:00:00 EDT -0400",
    "2024-07-01 10:00:00 EDT -0400",
    "2024-01-01 09:00:00 EST -0500",
    "2024-01-01 10:00:00 EST -0500",
    "2024-07-01 11:00:00 EDT -0400",
    "1900-01-01 09:56:02 EST -0500",
    "2024-07-01 10:00:00 PDT +0000",
];
