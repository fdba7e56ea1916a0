import assert from "node:assert/strict";
import fc from "fast-check";
import {
  isReservedUsername,
  normalizeUsername,
  reservedUsernames,
  type UsernameRules,
} from "../../src/sync/normalize.ts";

const defaults: UsernameRules = { minLength: 3, maxLength: 20 };

/**
 * Discourse's UsernameValidator, written from the reference and independently
 * of the implementation: every problem it finds, as a list.
 */
const validatorProblems = (
  username: string,
  rules: UsernameRules,
): ReadonlyArray<string> => {
  const problems: Array<string> = [];
  if (username.length < rules.minLength) problems.push("too short");
  if (username.length > rules.maxLength) problems.push("too long");
  for (const char of username) {
    const allowed = (char >= "a" && char <= "z") ||
      (char >= "A" && char <= "Z") || (char >= "0" && char <= "9") ||
      char === "_" || char === "." || char === "-";
    if (!allowed) problems.push(`invalid character ${JSON.stringify(char)}`);
  }
  const isAlnum = (char: string | undefined) =>
    char !== undefined && /^[A-Za-z0-9]$/.test(char);
  const isSpecial = (char: string | undefined) =>
    char === "_" || char === "." || char === "-";
  const first = username[0];
  if (!(isAlnum(first) || first === "_")) problems.push("bad first character");
  if (!isAlnum(username[username.length - 1])) {
    problems.push("bad last character");
  }
  for (let i = 1; i < username.length; i++) {
    if (isSpecial(username[i - 1]) && isSpecial(username[i])) {
      problems.push(`two specials in a row at ${i}`);
    }
  }
  const lower = username.toLowerCase();
  for (
    const suffix of [
      "js",
      "json",
      "css",
      "htm",
      "html",
      "xml",
      "jpg",
      "jpeg",
      "png",
      "gif",
      "bmp",
      "ico",
      "tif",
      "tiff",
      "woff",
    ]
  ) {
    if (lower.endsWith(`.${suffix}`)) problems.push(`ends in .${suffix}`);
  }
  return problems;
};

const assertValid = (username: string, rules: UsernameRules) =>
  assert.deepEqual(
    validatorProblems(username, rules),
    [],
    `${JSON.stringify(username)} invalid for ${JSON.stringify(rules)}`,
  );

Deno.test("the seed's examples normalize exactly as documented", () => {
  assert.equal(
    normalizeUsername("margherita cospe", defaults),
    "margherita_cospe",
  );
  assert.equal(
    normalizeUsername("user@domain.com", defaults),
    "user_domain.com",
  );
  assert.equal(normalizeUsername("user!@#$%name", defaults), "user_name");
});

Deno.test("valid names pass through unchanged, lower-cased", () => {
  assert.equal(normalizeUsername("jose.nunez", defaults), "jose.nunez");
  assert.equal(normalizeUsername("a-b_c.d", defaults), "a-b_c.d");
  assert.equal(normalizeUsername("JuanPerez", defaults), "juanperez");
  assert.equal(normalizeUsername("_under", defaults), "_under");
});

Deno.test("accents and special letters are transliterated", () => {
  assert.equal(normalizeUsername("josé.núñez", defaults), "jose.nunez");
  assert.equal(normalizeUsername("Çağrı", defaults), "cagri");
  assert.equal(normalizeUsername("straße", defaults), "strasse");
  assert.equal(normalizeUsername("Ærøskøbing", defaults), "aeroskobing");
  assert.equal(normalizeUsername("łódź", defaults), "lodz");
  assert.equal(normalizeUsername("đorđe", defaults), "dorde");
  assert.equal(normalizeUsername("þórr", defaults), "thorr");
  assert.equal(normalizeUsername("œuvre", defaults), "oeuvre");
  assert.equal(normalizeUsername("ＡＢＣ", defaults), "abc");
});

Deno.test("other non-ASCII becomes one underscore per run", () => {
  assert.equal(normalizeUsername("ivan Петров", defaults), "ivan");
  assert.equal(normalizeUsername("li 李小龙 wei", defaults), "li_wei");
  assert.equal(normalizeUsername("ab😀cd", defaults), "ab_cd");
});

Deno.test("runs of -_. collapse to one underscore; single ones stay", () => {
  assert.equal(normalizeUsername("a..b", defaults), "a_b");
  assert.equal(normalizeUsername("a.-_b", defaults), "a_b");
  assert.equal(normalizeUsername("a - b", defaults), "a_b");
  assert.equal(normalizeUsername("a-b", defaults), "a-b");
  assert.equal(normalizeUsername("a.b", defaults), "a.b");
});

Deno.test("bad first and last characters are stripped", () => {
  assert.equal(normalizeUsername(".alice", defaults), "alice");
  assert.equal(normalizeUsername("-alice", defaults), "alice");
  assert.equal(normalizeUsername("alice.", defaults), "alice");
  assert.equal(normalizeUsername("alice_-", defaults), "alice");
  assert.equal(normalizeUsername("@alice", defaults), "_alice");
  assert.equal(normalizeUsername("alice!", defaults), "alice");
});

Deno.test("confusing file suffixes lose their dot", () => {
  assert.equal(normalizeUsername("bob.json", defaults), "bob_json");
  assert.equal(normalizeUsername("bob.JS", defaults), "bob_js");
  assert.equal(normalizeUsername("photo.jpeg", defaults), "photo_jpeg");
  assert.equal(normalizeUsername("site.woff", defaults), "site_woff");
  // Not in the list: kept.
  assert.equal(normalizeUsername("bob.jsx", defaults), "bob.jsx");
  assert.equal(normalizeUsername("bob.ar", defaults), "bob.ar");
});

Deno.test("length rules: cut, then tidy the cut end, then pad", () => {
  const rules = { minLength: 3, maxLength: 10 };
  assert.equal(normalizeUsername("abcdefghijklmnop", rules), "abcdefghij");
  // The cut would end on a special character.
  assert.equal(normalizeUsername("abcdefghi.jklm", rules), "abcdefghi");
  // The cut would end in a confusing suffix.
  assert.equal(normalizeUsername("abcdefg.jsxyz", rules), "abcdefg_js");
  assert.equal(normalizeUsername("ab", rules), "ab1");
  assert.equal(
    normalizeUsername("a", { minLength: 5, maxLength: 10 }),
    "a1111",
  );
});

Deno.test("nothing usable left falls back to user", () => {
  assert.equal(normalizeUsername("", defaults), "user");
  assert.equal(normalizeUsername("!!!", defaults), "user");
  assert.equal(normalizeUsername("._-", defaults), "user");
  assert.equal(normalizeUsername("Петров", defaults), "user");
  assert.equal(normalizeUsername("", { minLength: 3, maxLength: 3 }), "use");
  assert.equal(
    normalizeUsername("", { minLength: 6, maxLength: 20 }),
    "user11",
  );
});

Deno.test("normalization is deterministic", () => {
  const input = "Élodie O'Brien-Smith";
  assert.equal(
    normalizeUsername(input, defaults),
    normalizeUsername(input, defaults),
  );
  assert.equal(normalizeUsername(input, defaults), "elodie_o_brien-smith");
});

Deno.test("Discourse's default reserved names are recognised case-insensitively", () => {
  assert.equal(reservedUsernames.length, 19);
  for (const name of ["admin", "System", "USER", "here", "discourseorg"]) {
    assert.equal(isReservedUsername(name), true, name);
  }
  for (const name of ["admins", "alice", "users", "moderator1"]) {
    assert.equal(isReservedUsername(name), false, name);
  }
  // A Moodle "Admin" normalizes to a reserved name the pipeline must refuse.
  assert.equal(isReservedUsername(normalizeUsername("Admin", defaults)), true);
});

Deno.test("the test's own validator rejects each kind of invalid name", () => {
  const bad: ReadonlyArray<[string, string]> = [
    ["ab", "too short"],
    ["a".repeat(21), "too long"],
    ["jos\u00e9", "invalid character"],
    [".abc", "bad first character"],
    ["abc_", "bad last character"],
    ["ab._c", "two specials in a row"],
    ["abc.Json", "ends in .json"],
  ];
  for (const [name, problem] of bad) {
    assert.ok(
      validatorProblems(name, defaults).some((found) =>
        found.startsWith(problem)
      ),
      `${name}: expected ${problem}`,
    );
  }
  assertValid("_a.b-c_d", defaults);
});

const ruleSets: ReadonlyArray<UsernameRules> = [
  { minLength: 3, maxLength: 20 },
  { minLength: 1, maxLength: 3 },
  { minLength: 3, maxLength: 3 },
  { minLength: 2, maxLength: 15 },
  { minLength: 8, maxLength: 60 },
  { minLength: 20, maxLength: 20 },
];

const specialChar = fc.constantFrom(
  "-",
  "_",
  ".",
  "@",
  " ",
  "é",
  "ß",
  "ø",
  "李",
  "\u0301",
  "J",
  "s",
  "o",
  "n",
  "1",
);
const suffixTail = fc.constantFrom(
  "",
  ".js",
  ".JSON",
  ".tiff",
  ".woff",
  "._",
  "-",
  ".",
);
const anyUsername = fc.tuple(
  fc.oneof(
    fc.string({ unit: "grapheme", maxLength: 40 }),
    fc.string({ unit: "binary", maxLength: 40 }),
    fc.string({ unit: specialChar, maxLength: 80 }),
    fc.stringMatching(/^[A-Za-z0-9_.@ -]{0,70}$/),
  ),
  suffixTail,
).map(([body, tail]) => body + tail);

Deno.test("property: every result is a valid Discourse username and normalizing it again changes nothing", () => {
  fc.assert(
    fc.property(anyUsername, fc.constantFrom(...ruleSets), (input, rules) => {
      const result = normalizeUsername(input, rules);
      assertValid(result, rules);
      assert.equal(result, result.toLowerCase());
      assert.equal(normalizeUsername(result, rules), result);
    }),
    { numRuns: 5000 },
  );
});

Deno.test("property: valid lower-case names are kept as they are", () => {
  const validName = fc.stringMatching(
    /^[a-z0-9_]([a-z0-9]|[-_.][a-z0-9])*$/,
  ).filter((name) => validatorProblems(name, defaults).length === 0);
  fc.assert(
    fc.property(validName, (name) => {
      assert.equal(normalizeUsername(name, defaults), name);
    }),
    { numRuns: 2000 },
  );
});
