/** What Discourse should hold for a Moodle user: pure, no I/O. */
// @ts-types="@types/turndown"
import TurndownService from "turndown";
import { DescriptionFormat, type MoodleUser } from "../moodle/schema.ts";
import { type Cleaned, forumSafe, removalNote } from "../domain/terminal.ts";

/** `settings.location`: how the country appears in Discourse's location. */
export interface LocationRules {
  readonly country: "code" | "name";
  readonly locale: string;
}

export interface DesiredProfile {
  readonly name: string;
  readonly location: string;
  readonly bio: string;
  readonly email: string;
  /** Control characters taken out of Moodle's value, by field; absent: none. */
  readonly removed?: Readonly<Partial<Record<CleanedField, number>>>;
}

/** The free-text fields whose Moodle values are cleaned for the forum. */
export type CleanedField = "name" | "location" | "bio";

const collapseWhitespace = (text: string): string =>
  text.trim().replace(/\s+/g, " ");

/** One formatter per locale: building an Intl.DisplayNames is not free. */
const regionNamesByLocale = new Map<string, Intl.DisplayNames | undefined>();

const regionNames = (locale: string): Intl.DisplayNames | undefined => {
  if (!regionNamesByLocale.has(locale)) {
    let names: Intl.DisplayNames | undefined;
    try {
      names = new Intl.DisplayNames([locale], {
        type: "region",
        fallback: "code",
      });
    } catch {
      // A malformed locale tag: the code is still meaningful to a reader.
      names = undefined;
    }
    regionNamesByLocale.set(locale, names);
  }
  return regionNamesByLocale.get(locale);
};

/**
 * The country's name in `locale` for an ISO 3166 alpha-2 code, or the code
 * itself when the code or locale is unknown.
 */
export function countryName(code: string, locale: string): string {
  if (!/^[A-Z]{2}$/.test(code)) return code;
  try {
    return regionNames(locale)?.of(code) ?? code;
  } catch {
    return code;
  }
}

/** The seed's rule: "City, CC", "CC", "City" or "". */
export function formatLocation(
  city: string | undefined,
  country: string | undefined,
  rules: LocationRules,
): string {
  const cityPart = (city ?? "").trim();
  const code = (country ?? "").trim().toUpperCase();
  const countryPart = code !== "" && rules.country === "name"
    ? countryName(code, rules.locale)
    : code;
  return [cityPart, countryPart].filter((part) => part !== "").join(", ");
}

const moodlePluginFile = /pluginfile\.php|@@PLUGINFILE@@/;

const turndown = new TurndownService({
  headingStyle: "atx",
  bulletListMarker: "-",
  codeBlockStyle: "fenced",
});
turndown.remove(["script", "style"]);
// Moodle serves these files only to a logged-in Moodle session: in Discourse
// they would be broken images, so only their description survives.
turndown.addRule("moodlePluginFileImage", {
  filter: (node) =>
    node.nodeName === "IMG" &&
    moodlePluginFile.test(node.getAttribute("src") ?? ""),
  replacement: (_content, node) =>
    collapseWhitespace(node.getAttribute("alt") ?? ""),
});

// Turndown pads list markers to four columns (`-   Python`); Markdown needs
// one space, and that is how people write it. Continuation lines and nested
// lists are indented to the item's text, as CommonMark expects.
turndown.addRule("listItem", {
  filter: "li",
  replacement: (content, node, options) => {
    const list = node.parentElement;
    let marker = `${options.bulletListMarker} `;
    if (list?.nodeName === "OL") {
      const start = Number(list.getAttribute("start") ?? "1") || 1;
      marker = `${start + Array.prototype.indexOf.call(list.children, node)}. `;
    }
    const isParagraph = /\n$/.test(content);
    const text = content.replace(/^\n+|\n+$/g, "") + (isParagraph ? "\n" : "");
    return marker + text.replace(/\n/g, `\n${" ".repeat(marker.length)}`) +
      (node.nextSibling ? "\n" : "");
  },
});

// Empty paragraphs (`<p><br></p>`, common in Moodle's editor) come out as
// lines of spaces that would otherwise survive between blank lines.
const tidyMarkdown = (markdown: string): string =>
  markdown
    .replace(/\r\n?/g, "\n")
    .replace(/^[ \t]+$/gm, "")
    .replace(/\n{3,}/g, "\n\n")
    .trim();

/** Moodle's HTML description as the Markdown Discourse keeps in `bio_raw`. */
export function htmlToMarkdown(html: string): string {
  return tidyMarkdown(turndown.turndown(html));
}

/**
 * `description` as Markdown. Moodle's web service formats descriptions to
 * HTML unless told otherwise, so an absent, auto (0) or unknown format is
 * HTML; plain text and Markdown are already what Discourse stores.
 */
export function bioMarkdown(
  description: string | undefined,
  format: number | undefined,
): string {
  const text = description ?? "";
  switch (format) {
    case DescriptionFormat.plain:
    case DescriptionFormat.markdown:
      return text.trim();
    default:
      return htmlToMarkdown(text);
  }
}

/** Line breaks and tabs in a one-line field read as spaces, not as removals. */
const oneLine = (text: string): Cleaned => {
  const cleaned = forumSafe(text.replace(/[\t\n\v\f\r]/g, " "));
  return { text: collapseWhitespace(cleaned.text), removed: cleaned.removed };
};

/** The bio as written to Discourse: Markdown, controls out (tab, newline kept). */
export function desiredBio(
  description: string | undefined,
  format: number | undefined,
): Cleaned {
  const cleaned = forumSafe(bioMarkdown(description, format), {
    multiline: true,
  });
  return cleaned.removed === 0
    ? cleaned
    : { text: cleaned.text.trim(), removed: cleaned.removed };
}

/** Only the fields that lost characters. */
export const removals = (
  counts: Readonly<Record<CleanedField, number>>,
): Readonly<Partial<Record<CleanedField, number>>> | undefined => {
  const found = Object.entries(counts).filter(([, n]) => n > 0);
  return found.length === 0 ? undefined : Object.fromEntries(found);
};

/**
 * What a row says about characters removed from the fields it writes:
 * "removed 2 control characters from bio".
 */
export const removalNotes = (
  desired: DesiredProfile,
  fields: ReadonlyArray<string>,
): ReadonlyArray<string> => {
  const removed = desired.removed;
  if (removed === undefined) return [];
  return fields.flatMap((field) => {
    const count = removed[field as CleanedField];
    return count === undefined ? [] : [removalNote(field, count)];
  });
};

export function desiredProfile(
  user: MoodleUser,
  locationRules: LocationRules,
): DesiredProfile {
  const name = oneLine(user.fullname);
  const location = oneLine(
    formatLocation(user.city, user.country, locationRules),
  );
  const bio = desiredBio(user.description, user.descriptionformat);
  const removed = removals({
    name: name.removed,
    location: location.removed,
    bio: bio.removed,
  });
  return {
    name: name.text,
    location: location.text,
    bio: bio.text,
    email: (user.email ?? "").trim(),
    ...(removed === undefined ? {} : { removed }),
  };
}
