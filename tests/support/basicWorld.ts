// The users of the basic run tests: twelve Moodle users and ten forum
// accounts, differing in the ways a sync meets most.
import type { MoodleScenario } from "../doubles/fakeMoodle.ts";
import type {
  DiscourseScenario,
  DiscourseScenarioUser,
} from "../doubles/fakeDiscourse.ts";
import { withWorld as withSharedWorld, type World } from "./world.ts";

export const columns = [
  "timestamp",
  "original_username",
  "normalized_username",
  "fullname",
  "email",
  "location",
  "action",
  "status",
  "message",
  "moodle_id",
  "fields",
  "before",
  "after",
];

/**
 * Twelve Moodle users covering the sync's cases, and a forum where some of
 * them exist with stale data.
 */
export const moodleUsers = (): MoodleScenario["users"] => [
  { id: 1, username: "guest", fullname: "Guest user", email: "root@localhost" },
  {
    id: 2,
    username: "admin.moodle",
    fullname: "Site Admin",
    email: "admin@uni.example",
  },
  {
    id: 3,
    username: "josé.núñez",
    fullname: "José  Núñez ",
    email: "jose@uni.example",
    city: "Buenos Aires",
    country: "AR",
    description: "<p>Profesor de <strong>física</strong></p>",
    descriptionformat: 1,
  },
  {
    id: 4,
    username: "margherita cospe",
    fullname: "Margherita Cospe",
    email: "margherita@uni.example",
    city: "Firenze",
    country: "IT",
  },
  {
    id: 5,
    username: "ana garcia",
    fullname: "Ana García",
    email: "ana1@uni.example",
  },
  {
    id: 6,
    username: "ana_garcia",
    fullname: "Ana Garcia Lopez",
    email: "ana2@uni.example",
  },
  {
    id: 7,
    username: "test.student",
    fullname: "Test Student",
    email: "test@uni.example",
  },
  {
    id: 8,
    username: "suspended.one",
    fullname: "Suspended One",
    email: "susp@uni.example",
    suspended: true,
  },
  {
    id: 9,
    username: "new.person",
    fullname: "New Person",
    email: "new@uni.example",
  },
  {
    id: 10,
    username: "up.to.date",
    fullname: "Up To Date",
    email: "same@uni.example",
    city: "Madrid",
    country: "ES",
    description: "Plain bio",
    descriptionformat: 2,
  },
  {
    id: 11,
    username: "email.changer",
    fullname: "Email Changer",
    email: "new-address@uni.example",
  },
  {
    id: 12,
    username: "bio.filler",
    fullname: "Bio Filler",
    email: "bio@uni.example",
    description: "<ul><li>one</li><li>two</li></ul>",
    descriptionformat: 1,
  },
];

export const forumUsers = (): DiscourseScenarioUser[] => [
  { id: 1, username: "system", email: "no_email@forum.example", admin: true },
  {
    id: 2,
    username: "admin.moodle",
    name: "Site Admin",
    email: "admin@uni.example",
  },
  {
    id: 3,
    username: "jose.nunez",
    name: "Jose Nunez",
    email: "jose@uni.example",
  },
  {
    id: 4,
    username: "margherita_cospe",
    name: "Margherita",
    email: "margherita@uni.example",
    location: "Roma, IT",
    bio_raw: "old bio",
  },
  { id: 5, username: "ana_garcia", name: "Ana", email: "ana2@uni.example" },
  { id: 6, username: "test.student", name: "Old", email: "test@uni.example" },
  { id: 7, username: "suspended.one", name: "Old", email: "susp@uni.example" },
  {
    id: 8,
    username: "up.to.date",
    name: "Up To Date",
    email: "same@uni.example",
    location: "Madrid, ES",
    bio_raw: "Plain bio",
  },
  {
    id: 9,
    username: "email.changer",
    name: "Email Changer",
    email: "old-address@uni.example",
  },
  {
    id: 10,
    username: "bio.filler",
    name: "Bio Filler",
    email: "bio@uni.example",
  },
];

export const withWorld = (
  options: {
    readonly settings?: Record<string, unknown>;
    readonly discourse?: Partial<DiscourseScenario>;
  },
  body: (world: World) => Promise<void>,
) =>
  withSharedWorld(
    { ...options, moodleUsers: moodleUsers(), forumUsers: forumUsers() },
    body,
  );
