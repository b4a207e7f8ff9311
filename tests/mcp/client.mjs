// Drives `grapevine mcp` with the official MCP TypeScript SDK's client
// over stdio (tests/integration/test_mcp.sh). Prints one `ok - NAME` or
// `not ok - NAME # why` line per check; exits non-zero if any failed.
//
// Environment: GV (the grapevine binary), DIR_A (the data directory of the
// node the MCP server talks to), DIR_B (another node of the same team),
// AS (the MCP agent's name, project:name).
import { execFileSync } from "node:child_process";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import {
  LATEST_PROTOCOL_VERSION,
  ResourceUpdatedNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";

const { GV, DIR_A, DIR_B, AS } = process.env;
let failed = 0;
const check = (name, cond, why = "") => {
  if (cond) console.log(`ok - ${name}`);
  else {
    failed++;
    console.log(`not ok - ${name} # ${String(why).replace(/\n/g, " ")}`);
  }
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const gv = (...args) => execFileSync(GV, args, { encoding: "utf8" });
const text = (r) => r.content?.[0]?.text ?? "";
// Retries fn every 200 ms for at most ms; returns its last value.
async function until(ms, fn) {
  let v;
  for (const end = Date.now() + ms; Date.now() < end; await sleep(200)) {
    try {
      if ((v = await fn())) return v;
    } catch {
      /* not yet */
    }
  }
  return v;
}

const transport = new StdioClientTransport({
  command: GV,
  args: ["mcp", "--as", AS, "--data-dir", DIR_A],
  stderr: "inherit",
});
const client = new Client({ name: "grapevine-test", version: "1.0.0" });
let agreed = null; // what initialize agreed, as the SDK tells its transport
const setVersion = transport.setProtocolVersion?.bind(transport);
transport.setProtocolVersion = (v) => {
  agreed = v;
  setVersion?.(v);
};
const updates = [];
client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
  updates.push(n.params.uri);
});

try {
  await client.connect(transport);
  check("initialize: server is grapevine", client.getServerVersion()?.name === "grapevine");
  check(`initialize: the SDK's latest version ${LATEST_PROTOCOL_VERSION} is agreed`, agreed === LATEST_PROTOCOL_VERSION, agreed);
  check("initialize: resources can be subscribed", client.getServerCapabilities()?.resources?.subscribe === true);

  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name).sort().join(",");
  check("tools/list: the five tools", names === "relay_agents,relay_inbox,relay_read,relay_send,relay_status", names);
  check(
    "tools/list: every inputSchema is a closed object",
    tools.every((t) => t.inputSchema.type === "object" && t.inputSchema.additionalProperties === false),
  );

  const { resources } = await client.listResources();
  check("resources/list: relay://inbox", resources.some((r) => r.uri === "relay://inbox"));
  await client.subscribeResource({ uri: "relay://inbox" });
  check("resources/subscribe relay://inbox", true);

  // relay_agents: this agent is in the directory, and node B sees it.
  const agents = await until(15000, async () => {
    const r = await client.callTool({ name: "relay_agents", arguments: {} });
    return !r.isError && r.structuredContent?.agents?.some((a) => a.address.startsWith(AS + "@")) && r;
  });
  check("relay_agents lists this agent (structuredContent)", !!agents, JSON.stringify(agents));
  const seenByB = await until(20000, () => gv("agents", "--data-dir", DIR_B, "--json").includes(`"${AS}@`));
  check("node B's directory lists the MCP agent", !!seenByB);

  // A message from an agent on node B: one resources/updated, no ack.
  gv("send", "--as", "other:sender", "--data-dir", DIR_B, AS, "hello from B");
  const got = await until(20000, () => updates.length > 0);
  check("notifications/resources/updated arrives for a message from node B", !!got && updates[0] === "relay://inbox", JSON.stringify(updates));

  const read1 = await client.readResource({ uri: "relay://inbox" });
  const read2 = await client.readResource({ uri: "relay://inbox" });
  const msgs = JSON.parse(read2.contents[0].text).messages;
  check(
    "resources/read relay://inbox is a peek (twice the same message)",
    read1.contents[0].text.includes("hello from B") && msgs.some((m) => m.body === "hello from B"),
  );
  const id = msgs.find((m) => m.body === "hello from B")?.id;
  const st0 = gv("trace", id, "--data-dir", DIR_B, "--json");
  check("the message is not delivered before the agent takes it", !st0.includes('"delivered"'), st0);

  // relay_inbox: a peek by default, takes with peek:false.
  let r = await client.callTool({ name: "relay_inbox", arguments: {} });
  check("relay_inbox (peek) lists it", !r.isError && r.structuredContent.messages.some((m) => m.id === id), text(r));
  r = await client.callTool({ name: "relay_inbox", arguments: { peek: false } });
  check("relay_inbox peek:false takes it", !r.isError && r.structuredContent.messages.some((m) => m.id === id), text(r));
  r = await client.callTool({ name: "relay_inbox", arguments: {} });
  check("relay_inbox afterwards is empty", !r.isError && r.structuredContent.messages.length === 0, text(r));
  r = await client.callTool({ name: "relay_read", arguments: { ids: [id] } });
  check("relay_read marks it read", !r.isError, text(r));
  const sawRead = await until(15000, () => gv("trace", id, "--data-dir", DIR_B, "--json").includes('"read"'));
  check("the sender on node B sees read", !!sawRead);

  // relay_send and relay_status.
  r = await client.callTool({
    name: "relay_send",
    arguments: { to: "other:sender", message: "hello back", wait: "stored", timeout_ms: 15000 },
  });
  check("relay_send wait:stored reaches stored", !r.isError && r.structuredContent.state === "stored", text(r));
  const sid = r.structuredContent?.id;
  r = await client.callTool({ name: "relay_status", arguments: { id: sid } });
  check(
    "relay_status gives the state and its trace",
    !r.isError && r.structuredContent.state && Array.isArray(r.structuredContent.trace),
    text(r),
  );

  // Failures are tool results with isError and our code.
  r = await client.callTool({ name: "relay_send", arguments: { to: "nobody:here", message: "x" } });
  check("an unknown recipient is isError UNKNOWN_RECIPIENT", r.isError === true && text(r).startsWith("UNKNOWN_RECIPIENT: "), text(r));
  check("the error is in structuredContent too", r.structuredContent?.error === "UNKNOWN_RECIPIENT");
  r = await client.callTool({ name: "relay_inbox", arguments: { limit: 0 } });
  check("arguments outside the schema are isError RANGE", r.isError === true && text(r).startsWith("RANGE: "), text(r));
  let protoErr = null;
  try {
    await client.callTool({ name: "no_such_tool", arguments: {} });
  } catch (e) {
    protoErr = e;
  }
  check("an unknown tool is a protocol error -32602", protoErr?.code === -32602, String(protoErr));
  await client.ping();
  check("ping", true);
} catch (e) {
  check("the session runs to its end", false, e?.stack ?? e);
} finally {
  await client.close();
}
process.exit(failed ? 1 : 0);
