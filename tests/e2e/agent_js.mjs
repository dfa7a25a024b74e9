// End-to-end client: @dfinity/agent 3.x against `icp start`.
// Usage: node agent_js.mjs <host> <counter.wasm> <provisional ecid>
// Prints one JSON object with what it observed; exits 1 on any error.
import { readFileSync } from "node:fs";
import { HttpAgent, Actor, CanisterStatus } from "@dfinity/agent";
import { IDL } from "@dfinity/candid";
import { Principal } from "@dfinity/principal";
import { Ed25519KeyIdentity, DelegationChain, DelegationIdentity } from "@dfinity/identity";

const [host, wasmPath, provisionalEcid] = process.argv.slice(2);

const managementIdl = ({ IDL }) => {
  const settings = IDL.Record({ controllers: IDL.Opt(IDL.Vec(IDL.Principal)) });
  return IDL.Service({
    provisional_create_canister_with_cycles: IDL.Func(
      [IDL.Record({ amount: IDL.Opt(IDL.Nat), settings: IDL.Opt(settings), specified_id: IDL.Opt(IDL.Principal) })],
      [IDL.Record({ canister_id: IDL.Principal })], []),
    install_code: IDL.Func(
      [IDL.Record({ mode: IDL.Variant({ install: IDL.Null, reinstall: IDL.Null }), canister_id: IDL.Principal,
                    wasm_module: IDL.Vec(IDL.Nat8), arg: IDL.Vec(IDL.Nat8) })], [], []),
  });
};
const counterIdl = ({ IDL }) => IDL.Service({
  inc: IDL.Func([], [IDL.Nat], []),
  add: IDL.Func([IDL.Nat], [IDL.Nat], []),
  get: IDL.Func([], [IDL.Nat], ["query"]),
  fail_after_inc: IDL.Func([], [], []),
});

async function main() {
  // A root key delegates to a session key, as Internet Identity does.
  const root = Ed25519KeyIdentity.generate();
  const session = Ed25519KeyIdentity.generate();
  const chain = await DelegationChain.create(root, session.getPublicKey(), new Date(Date.now() + 3600_000));
  const delegated = DelegationIdentity.fromDelegation(session, chain);
  const me = delegated.getPrincipal();
  if (me.toText() !== root.getPrincipal().toText()) throw new Error("delegation principal mismatch");

  const agent = await HttpAgent.create({ host, identity: delegated, shouldFetchRootKey: true });
  const out = { principal: me.toText(), rootKeyHex: Buffer.from(agent.rootKey).toString("hex") };

  const mgmtCreate = Actor.createActor(managementIdl, {
    agent, canisterId: Principal.managementCanister(), effectiveCanisterId: Principal.fromText(provisionalEcid) });
  const { canister_id } = await mgmtCreate.provisional_create_canister_with_cycles({
    amount: [10_000_000_000_000n], settings: [{ controllers: [[me]] }], specified_id: [] });
  out.canisterId = canister_id.toText();

  const mgmt = Actor.createActor(managementIdl, {
    agent, canisterId: Principal.managementCanister(), effectiveCanisterId: canister_id });
  await mgmt.install_code({ mode: { install: null }, canister_id, wasm_module: [...readFileSync(wasmPath)], arg: [] });

  const counter = Actor.createActor(counterIdl, { agent, canisterId: canister_id });
  out.inc1 = (await counter.inc()).toString();
  out.add = (await counter.add(41n)).toString();
  out.get = (await counter.get()).toString();   // query: node signature verified by the agent
  try { await counter.fail_after_inc(); out.trap = "no error"; }
  catch (e) { out.trap = String(e.message || e).slice(0, 400); }
  out.getAfterTrap = (await counter.get()).toString();

  // An anonymous agent can query too (no signature, same node-signed response).
  const anon = await HttpAgent.create({ host, shouldFetchRootKey: true });
  out.anonGet = (await Actor.createActor(counterIdl, { agent: anon, canisterId: canister_id }).get()).toString();

  const status = await CanisterStatus.request({ canisterId: canister_id, agent,
    paths: ["time", "controllers", "module_hash", "subnet"] });
  out.controllers = status.get("controllers").map((p) => p.toText());
  out.moduleHash = status.get("module_hash");
  out.time = Number(status.get("time")) ;
  const subnet = status.get("subnet");
  out.subnetId = subnet.subnetId;
  out.nodeKeys = subnet.nodeKeys.size;
  console.log(JSON.stringify(out));
}

main().catch((e) => { console.error(e && e.stack ? e.stack : String(e)); process.exit(1); });
