"""Staff, the registry of students and staff, their links to chats and the console, and who may do what."""
