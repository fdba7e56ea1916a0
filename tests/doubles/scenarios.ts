// Builders for double scenarios, and the demo scenario `deno task fakes`
// serves: about 25 users covering every case the sync must handle.
import {
  defaultAllowedFunctions,
  groupSyncFunctions,
  type MoodleScenario,
} from "./fakeMoodle.ts";
import type {
  DiscourseScenario,
  DiscourseScenarioUser,
} from "./fakeDiscourse.ts";

type MoodleRecord = Record<string, unknown>;

const capitalise = (word: string): string =>
  word === "" ? word : `${word[0].toUpperCase()}${word.slice(1)}`;

const namesFrom = (username: string): { first: string; last: string } => {
  const words = username.split("@")[0].split(/[._\s-]+/).filter((w) =>
    w !== ""
  );
  return {
    first: capitalise(words[0] ?? username),
    last: words.slice(1).map(capitalise).join(" "),
  };
};

const asciiLocal = (username: string): string =>
  username.normalize("NFKD").replace(/\p{M}/gu, "").toLowerCase()
    .replace(/[^a-z0-9._-]+/g, ".");

/**
 * A Moodle user record as `core_user_get_users` returns it. Names and email
 * are derived from the username unless overridden; an override set to
 * `undefined` removes the field (Moodle omits unset fields). `fullname`
 * follows firstname/lastname unless given.
 */
export const moodleUser = (
  id: number,
  username: string,
  overrides: MoodleRecord = {},
): MoodleRecord => {
  const { first, last } = namesFrom(username);
  const firstname = "firstname" in overrides ? overrides.firstname : first;
  const lastname = "lastname" in overrides ? overrides.lastname : last;
  const record: MoodleRecord = {
    id,
    username,
    firstname,
    lastname,
    fullname: `${firstname ?? ""} ${lastname ?? ""}`.trim(),
    email: username.includes("@")
      ? username
      : `${asciiLocal(username)}@campus.example`,
    department: "",
    firstaccess: 1_700_000_000 + id * 3600,
    lastaccess: 1_730_000_000 + id * 3600,
    auth: "manual",
    suspended: false,
    confirmed: true,
    lang: "es",
    theme: "",
    timezone: "99",
    mailformat: 1,
    profileimageurlsmall:
      `https://campus.example/theme/image.php/boost/core/1/u/f2?id=${id}`,
    profileimageurl:
      `https://campus.example/theme/image.php/boost/core/1/u/f1?id=${id}`,
    ...overrides,
  };
  for (const [key, value] of Object.entries(record)) {
    if (value === undefined) delete record[key];
  }
  return record;
};

/** Moodle's guest account, as a standard site returns it. */
export const guestUser = (): MoodleRecord =>
  moodleUser(1, "guest", {
    firstname: "Guest user",
    lastname: " ",
    fullname: "Guest user  ",
    email: "root@localhost",
    lang: "en",
    description:
      "This user is a special user that allows read-only access to some courses.",
    descriptionformat: 1,
  });

/** Prepends the guest user (id 1) unless the list already has id 1. */
export const withGuest = (users: MoodleRecord[]): MoodleRecord[] =>
  users.some((user) => user.id === 1) ? users : [guestUser(), ...users];

/** A Discourse user; name and email derived from the username unless given. */
export const discourseUser = (
  id: number,
  username: string,
  overrides: Partial<DiscourseScenarioUser> = {},
): DiscourseScenarioUser => {
  const { first, last } = namesFrom(username);
  return {
    id,
    username,
    name: `${first} ${last}`.trim(),
    email: `${asciiLocal(username)}@campus.example`,
    active: true,
    ...overrides,
  };
};

/** Obviously fake credentials of the demo doubles. */
export const demoCredentials = {
  moodleToken: "demo-moodle-token",
  discourseApiKey: "demo-discourse-api-key",
  discourseApiUser: "system",
} as const;

/**
 * The usernames behind each case of the demo, so end-to-end tests can name
 * the case they check rather than a magic username.
 */
export const demoCases = {
  /** Moodle's guest (id 1): never synced. */
  guest: "guest",
  /** Moodle's admin (id 2): `admin` is reserved in Discourse, no account there. */
  moodleAdmin: "admin",
  /** `josé.núñez` in Moodle is `jose.nunez` in Discourse; name differs. */
  accented: { moodle: "josé.núñez", discourse: "jose.nunez" },
  /** Both normalise to `ana_garcia`; Discourse's account has the second's email. */
  collidingSpaces: "ana garcia",
  collidingUnderscore: "ana_garcia",
  /** Matched by `exclude.usernames: ["test*"]`; its Discourse name differs. */
  excluded: "test.student",
  /** Suspended in Moodle; its Discourse name differs but must not be written. */
  suspended: "marco.rossi",
  /** Not in Discourse. */
  missing: ["lucia.fernandez", "giulia.bianchi"],
  nameDiffers: "emma.wilson",
  /** Buenos Aires + AR: Discourse must end with "Buenos Aires, AR". */
  locationDiffers: "carlos.mendez",
  bioDiffers: "sofia.romano",
  /** Discourse has an old address: an email change request is expected. */
  emailDiffers: "james.smith",
  upToDate: [
    "laura.martinez",
    "paolo.conti",
    "oliver.brown",
    "giorgio@unimi.it",
  ],
  /** Bold, link and list in Moodle; nothing in Discourse. */
  htmlBio: "valentina.ricci",
  /** Discourse account with no name, location or bio. */
  emptyDiscourseProfile: "diego.torres",
  /** Capitals in Moodle, lower case in Discourse (lookups are case-insensitive). */
  capitals: { moodle: "JuanPerez", discourse: "juanperez" },
  /** An @ in the Moodle username: `giorgio_unimi.it` in Discourse. */
  atSign: { moodle: "giorgio@unimi.it", discourse: "giorgio_unimi.it" },
  /** A city without a country: location "Napoli". */
  cityOnly: "chiara.esposito",
  /** A country without a city: location "IT". */
  countryOnly: "mario.verdi",
  /** No email in Moodle: the `email %` criterion drops it. */
  noEmail: "nomail.user",
  /** Moodle's address already belongs to another Discourse account. */
  emailTakenInDiscourse: "roberto.galli",
  /** A record without fullname and a string `suspended`. */
  malformed: "broken.record",
  /** A Moodle description over Discourse's 3000-character bio limit: 422. */
  bioTooLong: "federico.moretti",
  /** Forum-only accounts, never touched. */
  discourseOnly: ["forum.moderator", "rgalli.forum"],
  /** Material for group sync: a cohort and a course, each with its group. */
  groups: {
    cohort: {
      idnumber: "students-2026",
      name: "Estudiantes 2026",
      group: "students_2026",
    },
    course: { shortname: "HIST101", group: "hist101" },
    /** In students_2026 but not in the cohort: a removal. */
    staleMember: "rgalli.forum",
    /** Owner of students_2026, not in the cohort: owners are never removed. */
    owner: "forum.moderator",
    /** Enrolled in HIST101 with a suspended enrolment: not a member. */
    suspendedEnrolment: "paolo.conti",
    /** The course's teacher (editingteacher); the rest are students. */
    teacher: "josé.núñez",
  },
} as const;

const htmlBio = "<p>Me interesan <strong>la robótica</strong> y la " +
  '<a href="https://example.org/ia">inteligencia artificial</a>.</p>' +
  "<ul><li>Python</li><li>Arduino</li></ul>";

const longBio = `<p>${
  "Ricercatore di storia medievale con interesse per le fonti d'archivio. "
    .repeat(45)
    .trim()
}</p>`;

/** Moodle and Discourse, ready for `startFakeMoodle` / `startFakeDiscourse`. */
export const demoScenario = (): {
  moodle: MoodleScenario;
  discourse: DiscourseScenario;
} => {
  const moodleUsers = withGuest([
    moodleUser(2, "admin", {
      firstname: "Admin",
      lastname: "User",
      email: "admin@campus.example",
      lang: "en",
    }),
    moodleUser(3, "josé.núñez", {
      firstname: "José",
      lastname: "Núñez",
      email: "jose.nunez@campus.example",
      city: "Madrid",
      country: "ES",
      description: "<p>Profesor de historia.</p>",
      descriptionformat: 1,
    }),
    moodleUser(4, "ana garcia", {
      firstname: "Ana",
      lastname: "García",
      email: "ana.garcia@campus.example",
      city: "Sevilla",
      country: "ES",
    }),
    moodleUser(5, "ana_garcia", {
      firstname: "Ana",
      lastname: "García Ruiz",
      email: "ana.garcia.ruiz@campus.example",
      city: "Granada",
      country: "ES",
    }),
    moodleUser(6, "test.student", {
      firstname: "Test",
      lastname: "Student",
      lang: "en",
    }),
    moodleUser(7, "marco.rossi", {
      firstname: "Marco",
      lastname: "Rossi",
      city: "Roma",
      country: "IT",
      lang: "it",
      suspended: true,
    }),
    moodleUser(8, "lucia.fernandez", {
      firstname: "Lucía",
      lastname: "Fernández",
      city: "Valencia",
      country: "ES",
    }),
    moodleUser(9, "giulia.bianchi", {
      firstname: "Giulia",
      lastname: "Bianchi",
      city: "Milano",
      country: "IT",
      lang: "it",
    }),
    moodleUser(10, "emma.wilson", {
      firstname: "Emma",
      lastname: "Wilson-Clarke",
      city: "London",
      country: "GB",
      lang: "en",
      description: "<p>Hello</p>",
      descriptionformat: 1,
    }),
    moodleUser(11, "carlos.mendez", {
      firstname: "Carlos",
      lastname: "Méndez",
      city: "Buenos Aires",
      country: "AR",
      description: "<p>Hola</p>",
      descriptionformat: 1,
    }),
    moodleUser(12, "sofia.romano", {
      firstname: "Sofia",
      lastname: "Romano",
      city: "Torino",
      country: "IT",
      lang: "it",
      description: "<p>Insegnante di matematica.</p>",
      descriptionformat: 1,
    }),
    moodleUser(13, "james.smith", {
      firstname: "James",
      lastname: "Smith",
      city: "Manchester",
      country: "GB",
      lang: "en",
    }),
    moodleUser(14, "laura.martinez", {
      firstname: "Laura",
      lastname: "Martínez",
      city: "Bogotá",
      country: "CO",
      description: "<p>Hola</p>",
      descriptionformat: 1,
    }),
    moodleUser(15, "paolo.conti", {
      firstname: "Paolo",
      lastname: "Conti",
      city: "Firenze",
      country: "IT",
      lang: "it",
      description: "<p>Ciao a tutti</p>",
      descriptionformat: 1,
    }),
    moodleUser(16, "oliver.brown", {
      firstname: "Oliver",
      lastname: "Brown",
      city: "Dublin",
      country: "IE",
      lang: "en",
      description: "<p>Hi there</p>",
      descriptionformat: 1,
    }),
    moodleUser(17, "valentina.ricci", {
      firstname: "Valentina",
      lastname: "Ricci",
      city: "Bologna",
      country: "IT",
      lang: "it",
      description: htmlBio,
      descriptionformat: 1,
    }),
    moodleUser(18, "diego.torres", {
      firstname: "Diego",
      lastname: "Torres",
      city: "Lima",
      country: "PE",
      description: "<p>Ingeniero</p>",
      descriptionformat: 1,
    }),
    moodleUser(19, "JuanPerez", {
      firstname: "Juan",
      lastname: "Pérez",
      email: "juan.perez@campus.example",
      city: "Montevideo",
      country: "UY",
    }),
    moodleUser(20, "giorgio@unimi.it", {
      firstname: "Giorgio",
      lastname: "Ferrari",
      city: "Milano",
      country: "IT",
      lang: "it",
      description: "<p>Ciao</p>",
      descriptionformat: 1,
    }),
    moodleUser(21, "chiara.esposito", {
      firstname: "Chiara",
      lastname: "Esposito",
      city: "Napoli",
      lang: "it",
    }),
    moodleUser(22, "nomail.user", {
      firstname: "Sin",
      lastname: "Correo",
      email: undefined,
    }),
    moodleUser(23, "roberto.galli", {
      firstname: "Roberto",
      lastname: "Galli",
      city: "Genova",
      country: "IT",
      lang: "it",
    }),
    // Malformed on purpose: no fullname, `suspended` a string.
    {
      id: 24,
      username: "broken.record",
      email: "broken.record@campus.example",
      suspended: "no",
      auth: "manual",
    },
    moodleUser(25, "federico.moretti", {
      firstname: "Federico",
      lastname: "Moretti",
      city: "Padova",
      country: "IT",
      lang: "it",
      description: longBio,
      descriptionformat: 1,
    }),
    moodleUser(26, "mario.verdi", {
      firstname: "Mario",
      lastname: "Verdi",
      country: "IT",
      lang: "it",
    }),
  ]);

  const discourseUsers: DiscourseScenarioUser[] = [
    discourseUser(10, "jose.nunez", {
      name: "Jose Nunez",
      location: "Madrid, ES",
      bio_raw: "Profesor de historia.",
    }),
    discourseUser(11, "ana_garcia", {
      name: "Ana García Ruiz",
      email: "ana.garcia.ruiz@campus.example",
      location: "Granada, ES",
    }),
    discourseUser(12, "test.student", { name: "Student" }),
    discourseUser(13, "marco.rossi", { name: "Marco", location: "Roma, IT" }),
    discourseUser(14, "emma.wilson", {
      name: "Emma Wilson",
      location: "London, GB",
      bio_raw: "Hello",
    }),
    discourseUser(15, "carlos.mendez", {
      name: "Carlos Méndez",
      location: "Cordoba",
      bio_raw: "Hola",
    }),
    discourseUser(16, "sofia.romano", {
      name: "Sofia Romano",
      location: "Torino, IT",
      bio_raw: "Studentessa.",
    }),
    discourseUser(17, "james.smith", {
      name: "James Smith",
      email: "jsmith@oldmail.example",
      location: "Manchester, GB",
    }),
    discourseUser(18, "laura.martinez", {
      name: "Laura Martínez",
      location: "Bogotá, CO",
      bio_raw: "Hola",
    }),
    discourseUser(19, "paolo.conti", {
      name: "Paolo Conti",
      location: "Firenze, IT",
      bio_raw: "Ciao a tutti",
    }),
    discourseUser(20, "oliver.brown", {
      name: "Oliver Brown",
      location: "Dublin, IE",
      bio_raw: "Hi there",
    }),
    discourseUser(21, "valentina.ricci", {
      name: "Valentina Ricci",
      location: "Bologna, IT",
    }),
    discourseUser(22, "diego.torres", { name: undefined }),
    discourseUser(23, "juanperez", {
      name: "Juan Perez",
      email: "juan.perez@campus.example",
      location: "Montevideo, UY",
    }),
    discourseUser(24, "giorgio_unimi.it", {
      name: "Giorgio Ferrari",
      email: "giorgio@unimi.it",
      location: "Milano, IT",
      bio_raw: "Ciao",
    }),
    discourseUser(25, "chiara.esposito", { name: "Chiara Esposito" }),
    discourseUser(26, "roberto.galli", {
      name: "Roberto Galli",
      email: "rgalli@oldmail.example",
      location: "Genova, IT",
    }),
    discourseUser(27, "rgalli.forum", {
      name: "R. Galli",
      email: "roberto.galli@campus.example",
    }),
    discourseUser(28, "federico.moretti", {
      name: "Federico Moretti",
      location: "Padova, IT",
      bio_raw: "Ricercatore",
    }),
    discourseUser(29, "mario.verdi", {
      name: "Mario Verdi",
      location: "Italia",
    }),
    discourseUser(30, "forum.moderator", {
      name: "Forum Moderator",
      email: "moderator@forum.example",
      moderator: true,
    }),
  ];

  return {
    moodle: {
      token: demoCredentials.moodleToken,
      users: moodleUsers,
      allowedFunctions: [...defaultAllowedFunctions, ...groupSyncFunctions],
      cohorts: [{
        id: 1,
        name: demoCases.groups.cohort.name,
        idnumber: demoCases.groups.cohort.idnumber,
        // Ana García, Lucía (not in the forum), Emma, Carlos, Sofia, Laura.
        members: [4, 8, 10, 11, 12, 14],
      }],
      courses: [{
        id: 2,
        shortname: demoCases.groups.course.shortname,
        fullname: "Historia 101",
        enrolments: [
          { userid: 3, roles: ["editingteacher"] },
          { userid: 10, roles: ["student"] },
          { userid: 11, roles: ["student"] },
          { userid: 15, roles: ["student"], status: "suspended" },
          { userid: 16, roles: ["student"] },
          { userid: 6, roles: ["student"] },
        ],
      }],
    },
    discourse: {
      apiKey: demoCredentials.discourseApiKey,
      apiUser: demoCredentials.discourseApiUser,
      users: discourseUsers,
      groups: [
        {
          name: demoCases.groups.cohort.group,
          full_name: demoCases.groups.cohort.name,
          visibility_level: 2,
          members: [
            "emma.wilson",
            "carlos.mendez",
            demoCases.groups.staleMember,
          ],
          owners: [demoCases.groups.owner],
        },
        {
          name: demoCases.groups.course.group,
          full_name: "Historia 101",
          visibility_level: 2,
          members: ["emma.wilson"],
        },
      ],
    },
  };
};

/** The DiscourseConnect secret of `identityScenario`'s forum. */
export const identitySecret = "connect-secret-b64+/=";

/**
 * The usernames behind each identity case: a forum where DiscourseConnect
 * (Moodle as provider) stored each account's Moodle id as its external id,
 * and where usernames no longer say who is who.
 */
export const identityCases = {
  /** External id 2; renamed in Discourse to `ro_forum`. */
  renamed: { moodle: "renamed.one", discourse: "ro_forum" },
  /** Both normalise to `ana_garcia`; each has its own account by external id. */
  collidingSpace: { moodle: "ana garcia", discourse: "anagarcia.m" },
  collidingUnderscore: { moodle: "ana_garcia", discourse: "ana_garcia" },
  /** `taken.name` in Discourse carries external id 99: someone else's. */
  foreignByUsername: "taken.name",
  /** A local account with no SSO record: a username match may write it. */
  unlinked: "plain.user",
  /** Only the email finds it: `mm_other` has Moodle's address, no SSO record. */
  byEmail: { moodle: "mail.match", discourse: "mm_other" },
  /** External id 8, same username, nothing to change. */
  inStep: "in.step",
  /** `fm_x` has Moodle's address but external id 77: someone else's. */
  foreignByEmail: { moodle: "foreign.mail", discourse: "fm_x" },
  /** In no form in the forum. */
  absent: "brand.new",
} as const;

/**
 * Moodle and Discourse for the matching modes. The forum is a
 * DiscourseConnect site (by-external answers) unless a test says otherwise.
 */
export const identityScenario = (): {
  moodle: MoodleScenario;
  discourse: Omit<DiscourseScenario, "apiKey" | "apiUser">;
} => {
  const moodleUsers = withGuest([
    moodleUser(2, "renamed.one", {
      firstname: "Renata",
      lastname: "One",
      city: "Lyon",
      country: "FR",
    }),
    moodleUser(3, "ana garcia", {
      firstname: "Ana",
      lastname: "García",
      email: "ana.garcia@campus.example",
      city: "Sevilla",
      country: "ES",
    }),
    moodleUser(4, "ana_garcia", {
      firstname: "Ana",
      lastname: "García Ruiz",
      email: "ana.garcia.ruiz@campus.example",
      city: "Granada",
      country: "ES",
    }),
    moodleUser(5, "taken.name", { firstname: "Taken", lastname: "Name" }),
    moodleUser(6, "plain.user", {
      firstname: "Plain",
      lastname: "User",
      city: "Porto",
      country: "PT",
    }),
    moodleUser(7, "mail.match", {
      firstname: "Mail",
      lastname: "Match",
      email: "mail.match@campus.example",
    }),
    moodleUser(8, "in.step", {
      firstname: "In",
      lastname: "Step",
      city: "Roma",
      country: "IT",
    }),
    moodleUser(9, "foreign.mail", {
      firstname: "Foreign",
      lastname: "Mail",
      email: "foreign.mail@campus.example",
    }),
    moodleUser(10, "brand.new", {
      firstname: "Brand",
      lastname: "New",
      city: "Quito",
      country: "EC",
      description: "<p>Nueva en el foro</p>",
      descriptionformat: 1,
    }),
  ]);
  const forumUsers: DiscourseScenarioUser[] = [
    discourseUser(-1, "system", { admin: true }),
    discourseUser(20, "ro_forum", {
      name: "Renata",
      email: "renamed.one@campus.example",
      external_id: "2",
    }),
    discourseUser(21, "anagarcia.m", {
      name: "Ana",
      email: "ana.garcia@campus.example",
      external_id: "3",
    }),
    discourseUser(22, "ana_garcia", {
      name: "Ana G.",
      email: "ana.garcia.ruiz@campus.example",
      external_id: "4",
    }),
    discourseUser(23, "taken.name", {
      name: "Somebody Else",
      email: "somebody@elsewhere.example",
      external_id: "99",
    }),
    discourseUser(24, "plain.user", {
      name: "Plain",
      email: "plain.user@campus.example",
    }),
    discourseUser(25, "mm_other", {
      name: "M. Match",
      email: "mail.match@campus.example",
    }),
    discourseUser(26, "in.step", {
      name: "In Step",
      email: "in.step@campus.example",
      location: "Roma, IT",
      external_id: "8",
    }),
    discourseUser(27, "fm_x", {
      name: "Not Foreign Mail",
      email: "foreign.mail@campus.example",
      external_id: "77",
    }),
  ];
  return {
    moodle: { token: demoCredentials.moodleToken, users: moodleUsers },
    discourse: {
      users: forumUsers,
      site: { discourseConnectSecret: identitySecret },
    },
  };
};
