// An ICRC-1 ledger with the interface of ../ledger.did, for pocket-ic's ledger example.
//
// Written for icp in place of the prebuilt Rust ICRC-1 ledger Wasm the example ships.
// Implements ICRC-1 (balances, transfers, mints from and burns to the minting account,
// fees to the fee collector or burned, created_at_time window, memo length) and the
// transaction log with archiving as archive_options say: once trigger_threshold
// blocks are unarchived, the num_blocks_to_archive oldest are archived.  Difference:
// the Rust ledger moves archived blocks to archive canisters; this one keeps them and
// answers the archived ranges' callbacks itself (get_archived_transactions).
// Not implemented: ICRC-2, get_blocks, get_data_certificate, deduplication.
import Map "mo:core/Map";
import List "mo:core/List";
import Principal "mo:core/Principal";
import Text "mo:core/Text";
import Time "mo:core/Time";
import Nat "mo:core/Nat";
import Nat8 "mo:core/Nat8";
import Nat16 "mo:core/Nat16";
import Nat64 "mo:core/Nat64";
import Blob "mo:core/Blob";
import Array "mo:core/Array";
import Runtime "mo:core/Runtime";
import T "Types";

persistent actor class Ledger(ledger_arg : T.LedgerArg) {
  let init : T.InitArgs = switch ledger_arg {
    case (#Init i) i;
    case (#Upgrade _) Runtime.trap("the ledger must be installed with Init arguments");
  };
  let TX_WINDOW : Nat64 = 86_400_000_000_000; // 24 h (ICRC-1)
  let PERMITTED_DRIFT : Nat64 = 60_000_000_000; // 60 s
  let maxMemo : Nat = switch (init.max_memo_length) { case (?n) Nat16.toNat(n); case null 32 };
  let balances = Map.empty<Text, Nat>();
  let blocks = List.empty<T.Transaction>();
  var archived : Nat = 0;
  var supply : Nat = 0;

  func key(a : T.Account) : Text {
    let sub = switch (a.subaccount) {
      case null "";
      case (?s) if (Array.all<Nat8>(Blob.toArray(s), func b = b == 0)) "" else debug_show s;
    };
    Principal.toText(a.owner) # "/" # sub
  };
  func same(a : T.Account, b : T.Account) : Bool = key(a) == key(b);
  func balance(a : T.Account) : Nat {
    switch (Map.get(balances, Text.compare, key(a))) { case null 0; case (?v) v }
  };
  func setBalance(a : T.Account, v : Nat) = Map.add(balances, Text.compare, key(a), v);
  func now() : Nat64 = Nat64.fromIntWrap(Time.now());

  func append(tx : T.Transaction) : Nat {
    List.add(blocks, tx);
    let unarchived = List.size(blocks) - archived;
    if (unarchived >= Nat64.toNat(init.archive_options.trigger_threshold)) {
      archived += Nat.min(Nat64.toNat(init.archive_options.num_blocks_to_archive), unarchived);
    };
    List.size(blocks) - 1
  };

  func mint(to : T.Account, amount : Nat, memo : ?Blob, at : ?Nat64) : Nat {
    setBalance(to, balance(to) + amount);
    supply += amount;
    append({
      kind = "mint";
      mint = ?{ amount; to; memo; created_at_time = at };
      burn = null;
      transfer = null;
      timestamp = now();
    })
  };

  for ((account, amount) in init.initial_balances.vals()) {
    ignore mint(account, amount, null, null);
  };

  public shared ({ caller }) func icrc1_transfer(arg : T.TransferArg) : async T.TransferResult {
    let from = { owner = caller; subaccount = arg.from_subaccount };
    switch (arg.memo) {
      case (?m) if (Blob.size(m) > maxMemo) {
        return #Err(#GenericError { error_code = 0; message = "the memo field is too large" });
      };
      case null {};
    };
    switch (arg.created_at_time) {
      case (?t) {
        let n = now();
        if (t + TX_WINDOW + PERMITTED_DRIFT < n) return #Err(#TooOld);
        if (t > n + PERMITTED_DRIFT) return #Err(#CreatedInFuture { ledger_time = n });
      };
      case null {};
    };
    let minter = init.minting_account;
    if (same(from, minter)) {
      switch (arg.fee) {
        case (?f) if (f != 0) return #Err(#BadFee { expected_fee = 0 });
        case null {};
      };
      return #Ok(mint(arg.to, arg.amount, arg.memo, arg.created_at_time));
    };
    if (same(arg.to, minter)) {
      if (arg.amount < init.transfer_fee) {
        return #Err(#BadBurn { min_burn_amount = init.transfer_fee });
      };
      let b = balance(from);
      if (b < arg.amount) return #Err(#InsufficientFunds { balance = b });
      setBalance(from, b - arg.amount);
      supply -= arg.amount;
      return #Ok(append({
        kind = "burn";
        mint = null;
        burn = ?{ amount = arg.amount; from; memo = arg.memo; created_at_time = arg.created_at_time };
        transfer = null;
        timestamp = now();
      }));
    };
    let fee = init.transfer_fee;
    switch (arg.fee) {
      case (?f) if (f != fee) return #Err(#BadFee { expected_fee = fee });
      case null {};
    };
    let b = balance(from);
    if (b < arg.amount + fee) return #Err(#InsufficientFunds { balance = b });
    setBalance(from, b - arg.amount - fee);
    setBalance(arg.to, balance(arg.to) + arg.amount);
    switch (init.fee_collector_account) {
      case (?c) setBalance(c, balance(c) + fee);
      case null supply -= fee;
    };
    #Ok(append({
      kind = "transfer";
      mint = null;
      burn = null;
      transfer = ?{
        amount = arg.amount;
        from;
        to = arg.to;
        memo = arg.memo;
        created_at_time = arg.created_at_time;
        fee = arg.fee;
      };
      timestamp = now();
    }))
  };

  public query func icrc1_name() : async Text { init.token_name };
  public query func icrc1_symbol() : async Text { init.token_symbol };
  public query func icrc1_decimals() : async Nat8 {
    switch (init.decimals) { case (?d) d; case null 8 }
  };
  public query func icrc1_fee() : async Nat { init.transfer_fee };
  public query func icrc1_total_supply() : async Nat { supply };
  public query func icrc1_minting_account() : async ?T.Account { ?init.minting_account };
  public query func icrc1_balance_of(account : T.Account) : async Nat { balance(account) };
  public query func icrc1_metadata() : async [(Text, T.MetadataValue)] {
    Array.concat(
      [
        ("icrc1:name", #Text(init.token_name)),
        ("icrc1:symbol", #Text(init.token_symbol)),
        ("icrc1:decimals", #Nat(switch (init.decimals) { case (?d) Nat8.toNat(d); case null 8 })),
        ("icrc1:fee", #Nat(init.transfer_fee)),
        ("icrc1:max_memo_length", #Nat(maxMemo)),
      ],
      init.metadata,
    )
  };
  public query func icrc1_supported_standards() : async [{ name : Text; url : Text }] {
    [{ name = "ICRC-1"; url = "https://github.com/dfinity/ICRC-1/tree/main/standards/ICRC-1" }]
  };

  func slice(from : Nat, to : Nat) : [T.Transaction] {
    if (from >= to) [] else List.sliceToArray(blocks, from, to)
  };

  public query func get_transactions(req : T.GetTransactionsRequest) : async T.GetTransactionsResponse {
    let size = List.size(blocks);
    let end = Nat.min(req.start + req.length, size);
    let first = Nat.max(req.start, archived);
    let archivedEnd = Nat.min(end, archived);
    {
      log_length = size;
      first_index = first;
      transactions = slice(first, end);
      archived_transactions = if (req.start < archivedEnd) {
        [{ start = req.start; length = archivedEnd - req.start; callback = get_archived_transactions }]
      } else [];
    }
  };

  public query func get_archived_transactions(req : T.GetTransactionsRequest) : async T.TransactionRange {
    { transactions = slice(req.start, Nat.min(req.start + req.length, archived)) }
  };
};
