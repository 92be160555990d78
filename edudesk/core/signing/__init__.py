"""Digital school records (học bạ số): record PDFs, pyHanko signers behind the `Signer` port, validation,
and the ordered signing workflow (subject teachers → homeroom teacher → leadership → issuing signature)."""
