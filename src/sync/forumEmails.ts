/**
 * The forum's emails in bulk, read from the admin user list while the users'
 * profiles are read: pages go through the same rate limiter as every other
 * request, so the list costs the budget its pages cost and no time of its
 * own before the first user (at 100,000 users it was 1,001 pages, 77 s,
 * read up front). A user's email is taken from the list once its page is in;
 * the list comes in order of creation, as the users mostly do, so it is
 * usually there before it is asked for.
 */
import { Deferred, Effect, Ref } from "effect";
import { Discourse, type DiscourseError } from "../discourse/Discourse.ts";

export interface ForumEmails {
  /**
   * The primary email of the account with this lower-case username, once
   * the list has shown it; undefined when the list ended (or could not be
   * read) without it.
   */
  readonly lookup: (key: string) => Effect.Effect<string | undefined>;
}

/** Emails already known, as a list read to its end would give them. */
export const fixedEmails = (
  emails: ReadonlyMap<string, string>,
): ForumEmails => ({ lookup: (key) => Effect.succeed(emails.get(key)) });

/** Rows of the admin user list: the only way to read emails in bulk. */
export const adminPageSize = 100;

/** List pages requested at once. */
const pagesAtOnce = 4;

interface Progress {
  readonly done: boolean;
  /** Completed, and replaced, each time a page is in or the list ends. */
  readonly next: Deferred.Deferred<void>;
}

/**
 * Reads the admin list's first page, then the others in the background,
 * until every wanted username has been seen or the list ends (past its end
 * only when the forum holds fewer accounts than expected, and then at most
 * three pages). `undefined` wants every account:
 * matching by external id learns usernames only later. The readers are
 * children of the calling fiber: they end with the run. A failure after the
 * first page ends the list early; `onFailure` says so, and the users it did
 * not show read their emails one by one.
 */
export const startForumEmails = (
  wanted: ReadonlySet<string> | undefined,
  onFailure: (error: DiscourseError) => Effect.Effect<void>,
  /**
   * Accounts the forum is expected to hold (Moodle's users): past the pages
   * they fill, one page at a time, so the end of the list costs no page
   * read ahead of it for nothing.
   */
  expectedAccounts: number,
): Effect.Effect<ForumEmails, DiscourseError, Discourse> =>
  Effect.gen(function* () {
    const discourse = yield* Discourse;
    const emails = new Map<string, string>();
    const progress = yield* Ref.make<Progress>({
      done: false,
      next: yield* Deferred.make<void>(),
    });
    /** Wakes every lookup waiting for news. */
    const announce = (done: boolean) =>
      Effect.flatMap(
        Deferred.make<void>(),
        (next) =>
          Ref.getAndSet(progress, { done, next }).pipe(
            Effect.flatMap((previous) =>
              Deferred.succeed(previous.next, undefined)
            ),
          ),
      );

    let nextPage = 2;
    let lastPage = Number.POSITIVE_INFINITY;
    let found = 0;
    const finished = () =>
      nextPage > lastPage || (wanted !== undefined && found >= wanted.size);
    const readPage = (page: number) =>
      Effect.gen(function* () {
        const rows = yield* discourse.adminUserPage(page);
        for (const row of rows) {
          const key = row.username.toLowerCase();
          if (wanted !== undefined && !wanted.has(key)) continue;
          if (!emails.has(key)) found++;
          emails.set(key, row.email);
        }
        if (rows.length < adminPageSize) lastPage = Math.min(lastPage, page);
      });
    // The first page before any user: a key that may not read the list (a
    // 404 from a user who is not an admin) fails the run there, as always.
    yield* readPage(1);
    // The others a few at a time, so the list keeps ahead of the users even
    // though each page waits its turn behind their requests.
    const expectedPages = Math.ceil(expectedAccounts / adminPageSize);
    const readWhile = (more: () => boolean) =>
      Effect.gen(function* () {
        while (!finished() && more()) {
          yield* readPage(nextPage++);
          yield* announce(false);
        }
      });
    yield* Effect.fork(
      Effect.all(
        Array.from(
          { length: pagesAtOnce },
          () => readWhile(() => nextPage <= expectedPages),
        ),
        { concurrency: "unbounded", discard: true },
      ).pipe(
        // Past the expected pages, each page once the one before is in.
        Effect.zipRight(readWhile(() => true)),
        Effect.catchAll(onFailure),
        Effect.ensuring(announce(true)),
      ),
    );

    const lookup = (key: string): Effect.Effect<string | undefined> =>
      Effect.gen(function* () {
        for (;;) {
          const listed = emails.get(key);
          if (listed !== undefined) {
            return listed;
          }
          const { done, next } = yield* Ref.get(progress);
          // Seen by now, or never will be.
          const again = emails.get(key);
          if (again !== undefined || done) {
            return again;
          }
          yield* Deferred.await(next);
        }
      });
    return { lookup };
  });
