"""The vHSM keystore: the SQL database shared by one vHSM group."""
