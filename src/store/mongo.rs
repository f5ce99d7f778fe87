//! `MongoStore`: placeholder until the MongoDB backend lands (issue 3).
