// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title ISubscriptionCheckout
/// @notice Takes ERC-20 payments for subscription plans against quotes that the
/// tmai-pay service signed (EIP-712), and reports each one with {OrderPaid}.
interface ISubscriptionCheckout {
    /// @notice A price the service offers one payer for one order.
    /// @dev EIP-712 type:
    /// `Quote(uint256 orderId,address payer,address token,uint256 amount,uint32 planId,uint32 periods,uint64 deadline)`,
    /// domain name "TMAI Checkout", version "1", with chain id and this contract's address.
    struct Quote {
        /// Sequential order id assigned by the service; each is paid at most once.
        uint256 orderId;
        /// The only account that may pay this quote.
        address payer;
        /// The ERC-20 token the quote is priced in.
        address token;
        /// Exact amount, in the token's smallest unit, that the treasury receives.
        uint256 amount;
        /// The plan bought (the service's catalog id).
        uint32 planId;
        /// How many billing periods of the plan are bought.
        uint32 periods;
        /// Unix time after which the quote can no longer be paid.
        uint64 deadline;
    }

    /// @notice Emitted when an order is paid.
    /// @param orderId The quote's order id.
    /// @param payer The account that paid.
    /// @param planId The plan bought.
    /// @param token The ERC-20 token paid in.
    /// @param amount The amount the treasury received.
    /// @param periods The number of billing periods bought.
    event OrderPaid(
        uint256 indexed orderId,
        address indexed payer,
        uint32 indexed planId,
        address token,
        uint256 amount,
        uint32 periods
    );

    /// @notice Emitted when the owner rotates the quote signer.
    event QuoteSignerChanged(address indexed previousSigner, address indexed newSigner);

    /// @notice Emitted when the owner changes the treasury.
    event TreasuryChanged(address indexed previousTreasury, address indexed newTreasury);

    /// @notice The signature was not made by the current quote signer over this quote.
    error SubscriptionCheckout__InvalidSignature();

    /// @notice The caller is not the payer the quote names.
    error SubscriptionCheckout__WrongPayer(address payer, address caller);

    /// @notice The quote's deadline has passed.
    error SubscriptionCheckout__QuoteExpired(uint64 deadline, uint256 timestamp);

    /// @notice The order was paid already.
    error SubscriptionCheckout__OrderAlreadyPaid(uint256 orderId);

    /// @notice The treasury's balance did not grow by exactly the quoted amount
    /// (a fee-on-transfer or rebasing token).
    error SubscriptionCheckout__AmountMismatch(uint256 expected, uint256 received);

    /// @notice A zero address was given where an account is required.
    error SubscriptionCheckout__ZeroAddress();

    /// @notice The quote asks for a zero amount or zero periods.
    error SubscriptionCheckout__EmptyQuote();

    /// @notice Ownership cannot be renounced: without an owner a paused checkout stays paused
    /// and the signer and treasury can never change again.
    error SubscriptionCheckout__RenounceOwnershipDisabled();

    /// @notice Pays `quote` with a prior ERC-20 approval of this contract.
    /// @param quote The signed quote.
    /// @param signature The quote signer's 65-byte signature over the quote's EIP-712 digest.
    function pay(Quote calldata quote, bytes calldata signature) external;

    /// @notice Pays `quote` in one transaction, approving through the token's EIP-2612 `permit`.
    /// @dev The permit is tried and its failure ignored, so a permit that a third party
    /// front-ran (and so already applied) cannot block the payment; the transfer then
    /// fails on its own if the allowance is missing.
    function payWithPermit(
        Quote calldata quote,
        bytes calldata signature,
        uint256 permitDeadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external;

    /// @notice Returns whether `orderId` has been paid.
    function isOrderPaid(uint256 orderId) external view returns (bool);

    /// @notice Returns the EIP-712 digest that the quote signer signs for `quote`.
    function quoteDigest(Quote calldata quote) external view returns (bytes32);

    /// @notice Returns the account whose signatures make quotes valid.
    function quoteSigner() external view returns (address);

    /// @notice Returns the account that receives payments.
    function treasury() external view returns (address);
}
