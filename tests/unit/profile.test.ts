import assert from "node:assert/strict";
import type { MoodleUser } from "../../src/moodle/schema.ts";
import {
  countryName,
  desiredProfile,
  htmlToMarkdown,
  type LocationRules,
} from "../../src/sync/profile.ts";

const byCode: LocationRules = { country: "code", locale: "en" };
const inSpanish: LocationRules = { country: "name", locale: "es" };
const inEnglish: LocationRules = { country: "name", locale: "en" };

const user = (fields: Partial<MoodleUser> = {}): MoodleUser => ({
  id: 7,
  fullname: "Juan Pérez",
  username: "juan.perez",
  ...fields,
});

Deno.test("name is the full name trimmed with inner whitespace collapsed", () => {
  assert.equal(desiredProfile(user(), byCode).name, "Juan Pérez");
  assert.equal(
    desiredProfile(user({ fullname: "  Ana \t María\n  López  " }), byCode)
      .name,
    "Ana María López",
  );
  assert.equal(desiredProfile(user({ fullname: "   " }), byCode).name, "");
});

Deno.test("location with country codes: City, CC / CC / City / empty", () => {
  const location = (city?: string, country?: string) =>
    desiredProfile(user({ city, country }), byCode).location;
  assert.equal(location("Buenos Aires", "AR"), "Buenos Aires, AR");
  assert.equal(location(undefined, "AR"), "AR");
  assert.equal(location("", "AR"), "AR");
  assert.equal(location("   ", "ar"), "AR");
  assert.equal(location("Buenos Aires", undefined), "Buenos Aires");
  assert.equal(location("Buenos Aires", " "), "Buenos Aires");
  assert.equal(location(undefined, undefined), "");
  assert.equal(location("", ""), "");
  assert.equal(location("  Rosario ", " ar "), "Rosario, AR");
});

Deno.test("location with country names in the configured locale", () => {
  const location = (rules: LocationRules, city?: string, country?: string) =>
    desiredProfile(user({ city, country }), rules).location;
  assert.equal(location(inSpanish, "Múnich", "DE"), "Múnich, Alemania");
  assert.equal(location(inEnglish, "Munich", "DE"), "Munich, Germany");
  assert.equal(location(inSpanish, undefined, "es"), "España");
  assert.equal(location(inEnglish, undefined, "ES"), "Spain");
  assert.equal(location(inEnglish, "Lima", undefined), "Lima");
  assert.equal(location(inEnglish, undefined, undefined), "");
});

Deno.test("an unknown country code or locale falls back to the code", () => {
  assert.equal(countryName("QQ", "en"), "QQ");
  assert.equal(countryName("A1", "en"), "A1");
  assert.equal(countryName("AR", "not a locale!"), "AR");
  assert.equal(
    desiredProfile(
      user({ city: "X", country: "QQ" }),
      { country: "name", locale: "es" },
    ).location,
    "X, QQ",
  );
});

Deno.test("email is trimmed, its case kept, and absent means empty", () => {
  assert.equal(
    desiredProfile(user({ email: "  Juan.Perez@Example.org " }), byCode).email,
    "Juan.Perez@Example.org",
  );
  assert.equal(desiredProfile(user(), byCode).email, "");
});

const bioOf = (description: string | undefined, descriptionformat?: number) =>
  desiredProfile(user({ description, descriptionformat }), byCode).bio;

Deno.test("HTML descriptions become Markdown: bold, italics, links", () => {
  const html =
    `<p>Hola <strong>mundo</strong>, soy <em>docente</em>. <a href="https://example.org/juan">Mi web</a></p>`;
  const expected =
    "Hola **mundo**, soy _docente_. [Mi web](https://example.org/juan)";
  assert.equal(bioOf(html, 1), expected);
  // Moodle's web service returns HTML for auto-format and when the format is absent.
  assert.equal(bioOf(html, 0), expected);
  assert.equal(bioOf(html, undefined), expected);
});

Deno.test("HTML headings, lists and code use ATX, dashes and fences", () => {
  assert.equal(
    htmlToMarkdown(
      "<h2>Sobre mí</h2><ul><li>uno</li><li>dos</li></ul><ol><li>a</li></ol>" +
        "<pre><code>let x = 1;</code></pre>",
    ),
    "## Sobre mí\n\n- uno\n- dos\n\n1. a\n\n```\nlet x = 1;\n```",
  );
});

Deno.test("list items take one space after the marker; nested lists and paragraphs indent to the text", () => {
  assert.equal(
    htmlToMarkdown("<ul><li>Python</li><li>Arduino</li></ul>"),
    "- Python\n- Arduino",
  );
  assert.equal(
    htmlToMarkdown(
      "<ul><li>dos<ul><li>nested</li></ul></li></ul>" +
        '<ol start="3"><li>a</li><li><p>para</p><p>two</p></li></ol>',
    ),
    "- dos\n  - nested\n\n3. a\n4. para\n\n   two",
  );
});

Deno.test("script and style contents are dropped entirely", () => {
  assert.equal(
    htmlToMarkdown(
      `<p>Hola</p><script>alert("x")</script><style>p { color: red }</style><p>chau</p>`,
    ),
    "Hola\n\nchau",
  );
});

Deno.test("images served by Moodle's pluginfile.php keep only their alt text", () => {
  assert.equal(
    htmlToMarkdown(
      `<p>Yo: <img src="https://moodle.example/webservice/pluginfile.php/5/user/profile/0/me.jpg" alt="Mi foto"> ` +
        `<img src="https://cdn.example/logo.png" alt="logo"></p>`,
    ),
    "Yo: Mi foto ![logo](https://cdn.example/logo.png)",
  );
  assert.equal(
    htmlToMarkdown(
      `<p>Antes<img src="https://moodle.example/pluginfile.php/9/x.png">después</p>`,
    ),
    "Antesdespués",
  );
});

Deno.test("blank runs collapse to one empty line; results are trimmed", () => {
  assert.equal(
    htmlToMarkdown("<p>a</p><p><br></p><p><br></p><p></p><p>b</p>\n\n"),
    "a\n\nb",
  );
  assert.equal(htmlToMarkdown("   <p>  </p> "), "");
  assert.equal(htmlToMarkdown("<p>Hola &amp; adiós</p>"), "Hola & adiós");
});

Deno.test("plain and Markdown descriptions are kept as written, trimmed", () => {
  assert.equal(
    bioOf("  Just *text* <b>here</b>\n\n\n\nok  ", 2),
    "Just *text* <b>here</b>\n\n\n\nok",
  );
  assert.equal(bioOf("\n# Title\n\n- one\n", 4), "# Title\n\n- one");
});

Deno.test("a missing description is an empty bio", () => {
  assert.equal(bioOf(undefined, 1), "");
  assert.equal(bioOf(undefined, 2), "");
  assert.equal(bioOf(undefined, undefined), "");
});

Deno.test("controls and bidi overrides never reach the forum; the count of removed characters is kept per field", () => {
  const profile = desiredProfile(
    user({
      fullname: "Eve\u202E exe.txt\u0000",
      city: "Lima\r\n",
      country: "PE",
      description: "one\r\ntwo\tthree\u001b[2J\u2069",
      descriptionformat: 2,
    }),
    byCode,
  );
  assert.equal(profile.name, "Eve exe.txt");
  assert.equal(profile.location, "Lima, PE");
  // CRLF is a newline, tab stays: neither counts as removed.
  assert.equal(profile.bio, "one\ntwo\tthree[2J");
  assert.deepEqual(profile.removed, { name: 2, bio: 2 });
  assert.equal(desiredProfile(user(), byCode).removed, undefined);
});
