// Synthetic Moodle and Discourse populations for the benchmark: N Moodle
// users and about as many forum accounts, with a realistic mix of up-to-date
// profiles, differing fields and missing accounts. The forum's values for an
// up-to-date user come from the sync's own pure `desiredProfile`, so "up to
// date" means exactly what the sync means by it.
import {
  defaultAllowedFunctions,
  groupSyncFunctions,
  type MoodleScenario,
} from "../doubles/fakeMoodle.ts";
import type {
  DiscourseScenario,
  DiscourseScenarioUser,
} from "../doubles/fakeDiscourse.ts";
import { moodleUser, withGuest } from "../doubles/scenarios.ts";
import { desiredProfile } from "../../src/sync/profile.ts";
import type { MoodleUser } from "../../src/moodle/schema.ts";

export const benchCredentials = {
  moodleToken: "bench-moodle-token",
  discourseApiKey: "bench-discourse-api-key",
  discourseApiUser: "system",
} as const;

/** What the population holds on purpose, so a run's results can be checked. */
export interface Planted {
  /** Moodle users without a forum account. */
  readonly missing: ReadonlySet<string>;
  /** Forum usernames whose name, location or bio differs from Moodle. */
  readonly profileDiffers: ReadonlySet<string>;
  /** Forum usernames whose primary email differs from Moodle. */
  readonly emailDiffers: ReadonlySet<string>;
  /** Moodle usernames that collide after normalisation: ERROR rows by design. */
  readonly collisions: ReadonlySet<string>;
  /** Forum accounts with no Moodle user. */
  readonly forumOnly: number;
  /** Group memberships the groups planting makes differ. */
  readonly membershipChanges: number;
}

export interface Population {
  readonly moodle: MoodleScenario;
  readonly discourse: DiscourseScenario;
  readonly planted: Planted;
  /** Moodle usernames in list (id) order, guest excluded. */
  readonly usernames: ReadonlyArray<string>;
  /** `groups.map` for the planted groups, if any. */
  readonly groupMap?: ReadonlyArray<Record<string, string>>;
}

/**
 * The mix, per 100 users: 2 missing from the forum, 2 with a different
 * name, 2 location, 2 bio, 1 email, 1 with name, bio and email all
 * different; the other 90 up to date. One forum-only account per 100.
 */
type Kind =
  | "missing"
  | "name"
  | "location"
  | "bio"
  | "email"
  | "several"
  | "current";

export const kindOf = (index: number): Kind => {
  const slot = index % 100;
  if (slot === 17 || slot === 63) return "missing";
  if (slot === 5 || slot === 55) return "name";
  if (slot === 11 || slot === 71) return "location";
  if (slot === 23 || slot === 83) return "bio";
  if (slot === 41) return "email";
  if (slot === 97) return "several";
  return "current";
};

const cities = [
  ["Buenos Aires", "AR"],
  ["Madrid", "ES"],
  ["Milano", "IT"],
  ["Bogotá", "CO"],
  ["Dublin", "IE"],
  ["Lima", "PE"],
  ["Montevideo", "UY"],
  ["Manchester", "GB"],
] as const;

const firstNames = ["Ana", "José", "Giulia", "Oliver", "Lucía", "Marco"];
const lastNames = ["García", "Rossi", "Smith", "Núñez", "Bianchi", "Brown"];

/** A Moodle-style HTML description: a paragraph, some emphasis, sometimes a list. */
const description = (index: number): string =>
  `<p>Estudiante de <strong>ingeniería</strong> en la cohorte ${
    2000 + (index % 25)
  }. Me interesan la <a href="https://example.org/t/${index}">robótica</a> ` +
  `y la programación.</p>` +
  (index % 3 === 0 ? "<ul><li>Python</li><li>Arduino</li></ul>" : "");

const cvWords = (
  "investigación docencia proyecto universidad laboratorio análisis datos " +
  "publicaciones congreso internacional método enseñanza estudiantes curso " +
  "historia física química biología matemática economía derecho filosofía " +
  "research teaching project university laboratory analysis data published " +
  "conference international method learning students course history physics " +
  "chemistry biology mathematics economics law philosophy supervisor thesis " +
  "ricerca didattica progetto università laboratorio analisi dati convegno"
).split(" ");

/** A small deterministic generator: the same population every run. */
const wordsFrom = (seed: number) => {
  let state = seed * 2654435761 >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return cvWords[state % cvWords.length];
  };
};

const cvTemplateCount = 97;
const userMark = "USERMARK";

/**
 * A staff CV as Moodle's editor writes it: about `bytes` of HTML in
 * paragraphs, emphasis, links and lists, varied words (so it compresses like
 * prose, not like a repeated line). `USERMARK` stands for the user's number.
 */
const cvTemplate = (template: number, bytes: number): string => {
  const next = wordsFrom(template + 1);
  const sentence = (words: number) =>
    Array.from({ length: words }, next).join(" ");
  const parts: string[] = [
    `<p><strong>Curriculum</strong> ${userMark}: ${sentence(12)}.</p>`,
  ];
  let size = parts[0].length;
  for (let block = 0; size < bytes; block++) {
    const part = block % 4 === 3
      ? `<ul><li>${sentence(5)}</li><li>${sentence(6)}</li><li>${
        sentence(4)
      }</li></ul>`
      : block % 4 === 1
      ? `<p>${
        sentence(14)
      } <a href="https://example.org/cv/${userMark}/${block}">${
        sentence(3)
      }</a> ${sentence(10)}.</p>`
      : `<p>${sentence(18)}, <em>${sentence(4)}</em> ${sentence(12)}.</p>`;
    parts.push(part);
    size += part.length;
  }
  return parts.join("");
};

/** `bytes` of CV per user, and its Markdown, from a few templates. */
const cvBios = (bytes: number) => {
  const html = Array.from(
    { length: cvTemplateCount },
    (_, template) => cvTemplate(template, bytes),
  );
  // Converting 100,000 bios here would take minutes: each template is
  // converted once, and the user's number put in after.
  const markdown = html.map((text) =>
    desiredProfile(
      { id: 0, fullname: "", description: text, descriptionformat: 1 },
      { country: "code", locale: "en" },
    ).bio
  );
  const mark = new RegExp(userMark, "g");
  return {
    html: (index: number) =>
      html[index % cvTemplateCount].replace(mark, String(index)),
    markdown: (index: number) =>
      markdown[index % cvTemplateCount].replace(mark, String(index)),
  };
};

/** `student.<index>`: valid in Discourse as it is, 20 characters or fewer. */
export const usernameOf = (index: number): string => `student.${index}`;

/** The DiscourseConnect secret of the bench's SSO site (a fake value). */
export const benchSsoSecret = "bench-discourse-connect-secret";

/**
 * `sso`: the forum is a DiscourseConnect site whose accounts carry their
 * Moodle id as external id, as Moodle's local_discoursesso plugin makes them.
 */
/**
 * Groups: `count` cohorts of `size` consecutive users, each mapped to its
 * forum group; `churn` of each group's size changes, half additions (users
 * the forum group lacks), half removals (users of the next cohort).
 */
export interface GroupsPlanting {
  readonly count: number;
  readonly size: number;
  readonly churn: number;
}

const plantGroups = (planting: GroupsPlanting, users: number) => {
  const hasAccount = (index: number) =>
    index >= 1 && index <= users && kindOf(index) !== "missing";
  const perSide = Math.round(planting.size * planting.churn / 2);
  const cohorts = [];
  const groups = [];
  const map = [];
  for (let g = 0; g < planting.count; g++) {
    const block = Array.from(
      { length: planting.size },
      (_, i) => g * planting.size + i + 1,
    );
    const toAdd = block.filter(hasAccount).slice(0, perSide);
    const next = block.map((index) =>
      (index + planting.size - 1) % (planting.size * planting.count) + 1
    );
    const toRemove = next.filter(hasAccount).slice(0, perSide);
    cohorts.push({
      id: g + 1,
      name: `Cohort ${g + 1}`,
      idnumber: `cohort-${g + 1}`,
      members: block.map((index) => index + 1),
    });
    groups.push({
      name: `group_${g + 1}`,
      members: [
        ...block.filter((i) => hasAccount(i) && !toAdd.includes(i)),
        ...toRemove,
      ].map(usernameOf),
    });
    map.push({ cohort: `cohort-${g + 1}`, group: `group_${g + 1}` });
  }
  return { cohorts, groups, map, changes: planting.count * perSide * 2 };
};

export const syntheticPopulation = (
  size: number,
  options: {
    readonly sso?: boolean;
    readonly groups?: GroupsPlanting;
    /** Every Moodle user has a forum account already in step. */
    readonly inStep?: boolean;
    /** Bytes of HTML CV per user instead of a short bio. */
    readonly bioBytes?: number;
  } = {},
): Population => {
  const cv = options.bioBytes === undefined
    ? undefined
    : cvBios(options.bioBytes);
  const moodleRecords: Array<Record<string, unknown>> = [];
  const forumUsers: DiscourseScenarioUser[] = [];
  const missing = new Set<string>();
  const profileDiffers = new Set<string>();
  const emailDiffers = new Set<string>();
  const collisions = new Set<string>();
  const usernames: string[] = [];
  let forumId = 10;
  let forumOnly = 0;
  const locationRules = { country: "code", locale: "en" } as const;

  for (let index = 1; index <= size; index++) {
    const username = usernameOf(index);
    const [city, country] = cities[index % cities.length];
    const record = moodleUser(index + 1, username, {
      firstname: firstNames[index % firstNames.length],
      lastname: `${lastNames[index % lastNames.length]} ${index}`,
      city,
      country,
      description: cv ? cv.html(index) : description(index),
      descriptionformat: 1,
    });
    moodleRecords.push(record);
    usernames.push(username);
    const kind = options.inStep ? "current" : kindOf(index);
    if (kind === "missing") {
      missing.add(username);
    } else {
      const wanted = desiredProfile(
        cv
          ? { ...record, description: "" } as unknown as MoodleUser
          : record as unknown as MoodleUser,
        { ...locationRules },
      );
      const wantedBio = cv ? cv.markdown(index) : wanted.bio;
      const differs = (field: "name" | "location" | "bio" | "email") =>
        kind === field ||
        (kind === "several" && field !== "location");
      forumUsers.push({
        id: forumId++,
        username,
        name: differs("name") ? `${wanted.name} (old)` : wanted.name,
        email: differs("email") ? `${username}@old-mail.example` : wanted.email,
        location: differs("location") ? "Somewhere else" : wanted.location,
        bio_raw: differs("bio") ? "An old bio." : wantedBio,
        active: true,
        ...(options.sso ? { external_id: String(index + 1) } : {}),
      });
      if (kind !== "current" && kind !== "email") profileDiffers.add(username);
      if (differs("email")) emailDiffers.add(username);
    }
    if (index % 100 === 50) {
      forumOnly++;
      forumUsers.push({
        id: forumId++,
        username: `forum.only.${index}`,
        name: "Forum Only",
        email: `forum.only.${index}@forum.example`,
        active: true,
      });
    }
  }

  // One pair that normalises to the same forum name: refused, never written.
  const collisionId = size + 2;
  for (const [offset, username] of ["bench clash", "bench_clash"].entries()) {
    moodleRecords.push(moodleUser(collisionId + offset, username));
    usernames.push(username);
    collisions.add(username);
  }

  const planting = options.groups && plantGroups(options.groups, size);
  return {
    moodle: {
      token: benchCredentials.moodleToken,
      users: withGuest(moodleRecords),
      ...(planting
        ? {
          allowedFunctions: [...defaultAllowedFunctions, ...groupSyncFunctions],
          cohorts: planting.cohorts,
        }
        : {}),
      // Bodies of 100,000 requests are not worth keeping in the bench process.
      recordBodies: false,
    },
    discourse: {
      apiKey: benchCredentials.discourseApiKey,
      apiUser: benchCredentials.discourseApiUser,
      users: forumUsers,
      recordBodies: false,
      ...(planting ? { groups: planting.groups } : {}),
      ...(options.sso
        ? { site: { discourseConnectSecret: benchSsoSecret } }
        : {}),
    },
    planted: {
      missing,
      profileDiffers,
      emailDiffers,
      collisions,
      forumOnly,
      membershipChanges: planting?.changes ?? 0,
    },
    usernames,
    groupMap: planting?.map,
  };
};
