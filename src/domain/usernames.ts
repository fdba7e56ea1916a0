/** Username rules Discourse applies to accounts and groups alike. */

/**
 * Endings Discourse forbids because a URL ending like a file would be served
 * as an asset instead of the profile page.
 */
export const confusingSuffixes: ReadonlyArray<string> = [
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
];

export const confusingSuffix = new RegExp(
  `\\.(${confusingSuffixes.join("|")})$`,
  "i",
);
