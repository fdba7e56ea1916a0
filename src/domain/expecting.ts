/**
 * The text of an annotated schema's failure becomes the "expected" half of a
 * problem line, so it is phrased for the operator, not the programmer.
 * `override` keeps inner messages (e.g. "Expected number") from winning.
 */
export const expecting = (expected: string) => ({
  message: () => ({ message: expected, override: true }),
});
