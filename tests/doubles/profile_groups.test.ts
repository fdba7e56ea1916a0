// Pins the groups a profile answer lists, as Discourse's UserSerializer does
// (app/serializers/user_serializer.rb): every group the account is in,
// automatic ones included, by id, as the viewer may see them.
import assert from "node:assert/strict";
import type { DiscourseScenario } from "./fakeDiscourse.ts";
import { discourseUser } from "./scenarios.ts";
import { api, withDiscourse } from "../support/world.ts";

const forum: DiscourseScenario = {
  apiKey: "k3y",
  apiUser: "system",
  users: [
    discourseUser(10, "ana", { trust_level: 2 }),
    discourseUser(11, "ben", {}),
    discourseUser(12, "mod.erator", { moderator: true }),
  ],
  groups: [
    { id: 50, name: "hist101", members: ["ana"], owners: ["ben"] },
    { id: 45, name: "secret", visibility_level: 2, members: ["ana"] },
    { id: 46, name: "others", members: ["ben"] },
  ],
};

Deno.test("a profile lists its account's groups by id, automatic ones too, with ids and names", async () => {
  await withDiscourse(forum, async (discourse) => {
    for (
      const path of ["/u/ana.json", "/u/ANA.json?skip_track_visit=true"]
    ) {
      const { user } = (await api(discourse, path)).json();
      assert.deepEqual(
        user.groups.map((g: { id: number; name: string }) =>
          `${g.id} ${g.name}`
        ),
        [
          "10 trust_level_0",
          "11 trust_level_1",
          "12 trust_level_2",
          "45 secret",
          "50 hist101",
        ],
      );
      const hist101 = user.groups.at(-1);
      assert.equal(hist101.automatic, false);
      assert.equal(hist101.display_name, "hist101");
      assert.equal(hist101.user_count, 2, "ana and its owner ben");
      assert.equal(hist101.visibility_level, 0);
      assert.equal(user.groups[0].automatic, true);
      // An admin viewer also gets the memberships themselves.
      assert.deepEqual(user.group_users.at(-1), {
        group_id: 50,
        user_id: 10,
        notification_level: 3,
        owner: false,
      });
    }
    const ben = (await api(discourse, "/u/ben.json")).json().user;
    assert.equal(
      ben.group_users.find((g: { group_id: number }) => g.group_id === 50)
        ?.owner,
      true,
    );
    const staff = (await api(discourse, "/u/mod.erator.json")).json().user;
    assert.ok(
      staff.groups.some((g: { name: string }) => g.name === "staff"),
      "the staff group, automatic",
    );
  });
});

Deno.test("a viewer who may not see a group does not find it in a profile, nor the memberships", async () => {
  await withDiscourse(forum, async (discourse) => {
    const seenByBen = (await api(discourse, "/u/ana.json", {
      auth: { key: "k3y", user: "ben" },
    })).json().user;
    const names = seenByBen.groups.map((g: { name: string }) => g.name);
    assert.ok(names.includes("hist101"));
    assert.ok(!names.includes("secret"), "members only, and ben is none");
    assert.equal("group_users" in seenByBen, false);
  });
});
