/** Edits (insert, delete, replace one character) that turn `a` into `b`. */
const editDistance = (a: string, b: string): number => {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = Math.min(
        row[j] + 1,
        row[j - 1] + 1,
        diagonal + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      diagonal = above;
    }
  }
  return row[b.length];
};

/**
 * The known name a typo most likely meant: at most two edits away, ignoring
 * case, or the only name it begins (`--force` for `--force-recreate`).
 * Settings keys and command-line flags both use it.
 */
export const closestName = (
  typo: string,
  candidates: ReadonlyArray<string>,
): string | undefined => {
  const lower = typo.toLowerCase();
  const scored = candidates
    .map((name) => ({ name, score: editDistance(lower, name.toLowerCase()) }))
    .sort((a, b) => a.score - b.score);
  if (scored[0] !== undefined && scored[0].score <= 2) return scored[0].name;
  const extending = lower.length >= 3
    ? candidates.filter((name) => name.toLowerCase().startsWith(lower))
    : [];
  return extending.length === 1 ? extending[0] : undefined;
};
