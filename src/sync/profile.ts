/** What Discourse should hold for a Moodle user: pure, no I/O. */
// @ts-types="@types/turndown"
import TurndownService from "turndown";
import { DescriptionFormat, type MoodleUser } from "../moodle/schema.ts";

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
}

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

export function desiredProfile(
  user: MoodleUser,
  locationRules: LocationRules,
): DesiredProfile {
  return {
    name: collapseWhitespace(user.fullname),
    location: formatLocation(user.city, user.country, locationRules),
    bio: bioMarkdown(user.description, user.descriptionformat),
    email: (user.email ?? "").trim(),
  };
}
