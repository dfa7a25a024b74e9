// The Candid types of ../ledger.did (DFINITY's ICRC-1 ledger interface), in Motoko.
module {
  public type Subaccount = Blob;
  public type Account = { owner : Principal; subaccount : ?Subaccount };
  public type TransferArg = {
    from_subaccount : ?Subaccount;
    to : Account;
    amount : Nat;
    fee : ?Nat;
    memo : ?Blob;
    created_at_time : ?Nat64;
  };
  public type TransferError = {
    #BadFee : { expected_fee : Nat };
    #BadBurn : { min_burn_amount : Nat };
    #InsufficientFunds : { balance : Nat };
    #TooOld;
    #CreatedInFuture : { ledger_time : Nat64 };
    #TemporarilyUnavailable;
    #Duplicate : { duplicate_of : Nat };
    #GenericError : { error_code : Nat; message : Text };
  };
  public type TransferResult = { #Ok : Nat; #Err : TransferError };
  public type MetadataValue = { #Nat : Nat; #Int : Int; #Text : Text; #Blob : Blob };
  public type FeatureFlags = { icrc2 : Bool };
  public type ArchiveOptions = {
    num_blocks_to_archive : Nat64;
    trigger_threshold : Nat64;
    max_message_size_bytes : ?Nat64;
    cycles_for_archive_creation : ?Nat64;
    node_max_memory_size_bytes : ?Nat64;
    controller_id : Principal;
  };
  public type InitArgs = {
    minting_account : Account;
    fee_collector_account : ?Account;
    transfer_fee : Nat;
    decimals : ?Nat8;
    max_memo_length : ?Nat16;
    token_symbol : Text;
    token_name : Text;
    metadata : [(Text, MetadataValue)];
    initial_balances : [(Account, Nat)];
    archive_options : ArchiveOptions;
    feature_flags : ?FeatureFlags;
  };
  public type ChangeFeeCollector = { #Unset; #SetTo : Account };
  public type UpgradeArgs = {
    metadata : ?[(Text, MetadataValue)];
    token_symbol : ?Text;
    token_name : ?Text;
    transfer_fee : ?Nat64;
    change_fee_collector : ?ChangeFeeCollector;
    max_memo_length : ?Nat16;
    feature_flags : ?FeatureFlags;
  };
  public type LedgerArg = { #Init : InitArgs; #Upgrade : ?UpgradeArgs };
  public type GetTransactionsRequest = { start : Nat; length : Nat };
  public type Mint = { amount : Nat; to : Account; memo : ?Blob; created_at_time : ?Nat64 };
  public type Burn = { amount : Nat; from : Account; memo : ?Blob; created_at_time : ?Nat64 };
  public type Transfer = {
    amount : Nat;
    from : Account;
    to : Account;
    memo : ?Blob;
    created_at_time : ?Nat64;
    fee : ?Nat;
  };
  public type Transaction = {
    kind : Text;
    mint : ?Mint;
    burn : ?Burn;
    transfer : ?Transfer;
    timestamp : Nat64;
  };
  public type TransactionRange = { transactions : [Transaction] };
  public type QueryArchiveFn = shared query GetTransactionsRequest -> async TransactionRange;
  public type ArchivedRange = { start : Nat; length : Nat; callback : QueryArchiveFn };
  public type GetTransactionsResponse = {
    log_length : Nat;
    transactions : [Transaction];
    first_index : Nat;
    archived_transactions : [ArchivedRange];
  };
};
