/** The accounts every e2e server starts with (made with `qrlogin user add`). */
export const PASSWORD = "e2e password 1";
export const USERS: Record<string, string> = {
  alice: "Alice Liddell",
  bob: "Bob Builder",
  carol: "Carol Danvers",
  dave: "Dave Lister",
};
